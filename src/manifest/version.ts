import { readFileSync } from 'node:fs';

/** The package version, from src/ (vitest) or dist/src/ (built) alike. */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vipd' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  throw new Error('cannot find vipd\'s package.json');
}
