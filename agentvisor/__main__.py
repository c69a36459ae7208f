from agentvisor.cli.daemon import main

main()
