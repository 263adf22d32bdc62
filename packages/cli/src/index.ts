export { main, commands, mainHelp, loadPlugins } from './main.js';
export { inspectModel, formatInspect, type InspectReport } from './commands/inspect.js';
export { parseArgs, UsageError } from './args.js';
