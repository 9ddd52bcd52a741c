from mobius.cli.app import main

main()
