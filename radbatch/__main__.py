from radbatch.cli.main import main

main()
