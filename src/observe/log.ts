import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One JSON line per event on stderr (stdout stays free for command output such as manifests).
 * Field names are stable: `vip`, `node`, `iface`, `reason`, `err`.
 */
export function createLogger(level: string = process.env.VIPD_LOG_LEVEL ?? 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
