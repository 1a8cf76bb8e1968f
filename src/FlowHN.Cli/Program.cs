using FlowHN.Cli;

return FlowHnCli.Run(args, Console.Out, Console.Error);
