from gigafactory.cli.app import main

main()
