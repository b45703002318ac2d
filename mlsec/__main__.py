from mlsec.cli import main

main()
