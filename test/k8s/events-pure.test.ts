import { describe, expect, it } from 'vitest';
import { SeriesBook } from '../../src/k8s/events.js';

describe('Event series (SeriesBook)', () => {
  it('the first occurrence creates; a repeat within the window counts on it, the first repeat due at once', () => {
    const b = new SeriesBook(60_000, 10_000);
    const first = b.observe('k', 0);
    expect(first.kind).toBe('create');
    // What the recorder does when the create succeeds.
    Object.assign(first.entry, { name: 'e1', writtenCount: 1, writtenAt: 0 });
    const second = b.observe('k', 1_000);
    expect(second).toMatchObject({ kind: 'repeat', writeInMs: 0, entry: { count: 2 } });
    expect(second.entry).toBe(first.entry);
  });

  it('after the first series write, later repeats wait for the next slot', () => {
    const b = new SeriesBook(60_000, 10_000);
    const e = b.observe('k', 0).entry;
    Object.assign(e, { name: 'e1', writtenCount: 2, writtenAt: 2_000 });
    expect(b.observe('k', 3_000)).toMatchObject({ kind: 'repeat', writeInMs: 9_000, entry: { count: 2 } });
    expect(b.observe('k', 15_000)).toMatchObject({ kind: 'repeat', writeInMs: 0, entry: { count: 3 } });
  });

  it('a repeat after the window, or after the Event was forgotten, creates a new one; other keys are their own', () => {
    const b = new SeriesBook(60_000, 10_000);
    const e = b.observe('k', 0).entry;
    expect(b.observe('other', 1).kind).toBe('create');
    expect(b.observe('k', 60_000).kind).toBe('repeat'); // last occurrence 60 s ago: still in
    expect(b.observe('k', 120_001).kind).toBe('create');
    const again = b.observe('k', 120_002);
    b.forget('k', again.entry);
    expect(b.observe('k', 120_003).kind).toBe('create');
    b.forget('k', e); // a stale entry forgets nothing newer
    expect(b.observe('k', 120_004).kind).toBe('repeat');
    expect(b.size()).toBe(1); // 'other' went with the window
  });
});
