from ftkit.cli.app import main

main()
