using Tidal.Cli;

return await TidalCli.RunAsync(args, Console.Out, Console.Error);
