/**
 * A rule over settings that does not hold. The pure checks (Lease timing, peer timing) return it;
 * the config module turns it into a ConfigError naming the user's setting, without reading the
 * message text: `settings[0]` is the setting to name, `value` its value as written in the rule,
 * `rule` the sentence that follows it.
 */
export class RuleError<S extends string = string> extends Error {
  constructor(
    readonly settings: readonly S[],
    readonly value: string | undefined,
    readonly rule: string,
    message: string,
  ) {
    super(message);
  }
}
