"""The validating admission webhook: the API server asks, `pweza apply`'s validation answers.

`kubectl apply` of a pweza.ai object goes through the same `parse_manifest` that `pweza apply`
runs on a file, so a bad duration, an unknown or cyclic `depends`, an invalid CEL expression or a
duplicate step name is refused with the same text (field path, what was wrong, what is allowed).

Every operator replica serves it from start-up, before and regardless of the leader Lease: the
API server may call any replica behind the Service, and a standby answers as well as the leader.
It is a plain aiohttp endpoint rather than kopf's webhook server, which runs only inside
`kopf.operator()` (the leader's) and would want RBAC on webhook configurations to manage them;
here the Helm chart owns the ValidatingWebhookConfiguration and the operator needs no such rights.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import KINDS, parse_manifest

log = structlog.get_logger(__name__)
GROUP = "pweza.ai"
PATH = "/validate"
# An AdmissionReview carries the object and, on UPDATE, the old one: etcd keeps objects up to
# 1.5 MiB, so twice that with JSON's overhead. Anything larger is not a real review.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
# cert-manager renews the Secret in place; the kubelet updates the mounted files.
RELOAD_SECONDS = 60.0


def problem(request: dict[str, Any]) -> str | None:
    """Why the API server should refuse this AdmissionRequest, or None to admit it."""
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return None
    kind = request.get("kind") or {}
    if kind.get("group") != GROUP or kind.get("kind") not in KINDS:
        return None  # not ours: the webhook's rules should not have sent it
    obj = request.get("object")
    if not isinstance(obj, dict):
        return "the admission request carries no object"
    old = request.get("oldObject")
    if request.get("operation") == "UPDATE" and isinstance(old, dict) and old.get("spec") == obj.get("spec"):
        # A change that leaves the spec as it was (labels, finalizers, kopf's annotations, a
        # deletion) is admitted, so an object stored before the webhook existed can still be
        # annotated, finalized and deleted; only a new spec is checked.
        return None
    document = {key: obj[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in obj}
    try:
        parse_manifest(document)
    except InvalidInput as error:
        return error.detail
    return None


def review_response(review: Any) -> dict[str, Any]:
    """The AdmissionReview (admission.k8s.io/v1) answering `review`."""
    request = review.get("request") if isinstance(review, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise web.HTTPBadRequest(text="expected an admission.k8s.io/v1 AdmissionReview with a request")
    refusal = problem(request)
    response: dict[str, Any] = {"uid": request["uid"], "allowed": refusal is None}
    if refusal is not None:
        # kubectl prints "admission webhook ... denied the request: <message>".
        response["status"] = {"code": 422, "reason": "Invalid", "message": refusal}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    certfile: str
    keyfile: str
    port: int = 8443
    host: str = "0.0.0.0"


def tls_context(options: WebhookOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.certfile, options.keyfile)
    return context


def _stamp(options: WebhookOptions) -> tuple[float, float]:
    return (os.stat(options.certfile).st_mtime, os.stat(options.keyfile).st_mtime)


async def _reload_forever(context: ssl.SSLContext, options: WebhookOptions) -> None:
    """Load renewed certificate files into the serving context; new handshakes use them."""
    seen = _stamp(options)
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        try:
            stamp = _stamp(options)
            if stamp != seen:
                context.load_cert_chain(options.certfile, options.keyfile)
                seen = stamp
                log.info("reloaded the admission webhook certificate", certfile=options.certfile)
        except (OSError, ssl.SSLError) as error:
            # Mid-rotation the pair may not match for a moment: keep the old one and try again.
            log.warning("could not reload the admission webhook certificate", error=str(error))


async def _validate(request: web.Request) -> web.Response:
    try:
        review = await request.json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested past the parser's stack; no real object nests that deep.
        raise web.HTTPBadRequest(text="the body is not an AdmissionReview in JSON") from None
    # Off the event loop: a large workflow takes a moment to check, and the leader's kopf
    # handlers share this loop.
    answer = await asyncio.to_thread(review_response, review)
    response = answer["response"]
    if not response["allowed"]:
        inner = review["request"]
        log.info(
            "admission refused",
            kind=(inner.get("kind") or {}).get("kind"),
            name=f"{inner.get('namespace')}/{inner.get('name')}",
            reason=response["status"]["message"],
        )
    return web.json_response(answer)


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class WebhookError(Exception):
    """The webhook cannot be served (unusable certificate files, port taken)."""


class AdmissionServer:
    """The HTTPS endpoint; `start` raises WebhookError at once if it cannot serve."""

    def __init__(self, options: WebhookOptions) -> None:
        self.options = options
        self._runner: web.AppRunner | None = None
        self._reloading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            context = tls_context(self.options)
        except (OSError, ssl.SSLError) as error:
            raise WebhookError(
                f"cannot use the webhook certificate {self.options.certfile} with key {self.options.keyfile}: {error}"
            ) from None
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post(PATH, _validate)
        app.router.add_get("/healthz", _healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.options.host, self.options.port, ssl_context=context).start()
        except OSError as error:
            await self._runner.cleanup()
            where = f"{self.options.host}:{self.options.port}"
            raise WebhookError(f"cannot serve the webhook on {where}: {error}") from None
        self._reloading = asyncio.create_task(_reload_forever(context, self.options))
        log.info("serving the admission webhook", port=self.options.port, path=PATH)

    async def stop(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        if self._runner is not None:
            await self._runner.cleanup()
