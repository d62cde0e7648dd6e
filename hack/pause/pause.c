/*
 * The pod sandbox ("pause") process of ghcr.io/pweza/pause: it holds the pod's namespaces
 * open, so it only has to stay alive, reap the zombies that end up parented to it
 * (it is PID 1 of the pod when the PID namespace is shared) and leave cleanly when
 * the kubelet stops the sandbox.
 *
 * Built static (gcc -static -O2) so that the image can be FROM scratch.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static void on_child(int signo)
{
    (void)signo;
    /* A handler may run once for many children: reap all that are done. waitpid may
     * change errno, which the interrupted code could be looking at. */
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int install(int signo, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        /* Same contract as the upstream pause: it takes no arguments. */
        fputs("usage: pause (takes no arguments)\n", stderr);
        return 2;
    }
    /* As PID 1 a signal without a handler is ignored, so TERM and INT need one to stop us. */
    if (install(SIGTERM, on_stop, 0) != 0 || install(SIGINT, on_stop, 0) != 0 ||
        install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
        perror("pause: sigaction");
        return 1;
    }

    /* Block TERM and INT outside sigsuspend: a signal arriving between the check of
     * stop_requested and the wait would otherwise be slept through. */
    sigset_t stopping, waiting;
    sigemptyset(&stopping);
    sigaddset(&stopping, SIGTERM);
    sigaddset(&stopping, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stopping, &waiting) != 0) {
        perror("pause: sigprocmask");
        return 1;
    }
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    while (!stop_requested) {
        sigsuspend(&waiting);
    }
    return 0;
}
