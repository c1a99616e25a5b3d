export { Capture, decodePcap, type SrhView, srhPackets, type TsharkPacket, tsharkFields } from './capture.ts';
export { Daemon, spawnDaemon } from './daemon.ts';
export { CommandError, findTool, type ShResult, sh, waitFor } from './exec.ts';
export { createLab, Lab } from './lab.ts';
export { type RouteMonitor, routeMonitor } from './monitor.ts';
export { createVeth, Netns, UnderlaySwitch } from './netns.ts';
export { pace, paced } from './pace.ts';
export { addSweepHook, objectName, runLogDir, runPrefix, sweep } from './run.ts';
export { isCi, kernelIt, missingRequirements, systemSuite } from './suite.ts';
