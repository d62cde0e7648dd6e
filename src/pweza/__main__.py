from pweza.cli.main import main

main()
