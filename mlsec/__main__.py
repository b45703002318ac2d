from mlsec.launch import main

main()
