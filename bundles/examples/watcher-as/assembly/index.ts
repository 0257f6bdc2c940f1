// Example app (AssemblyScript): watches the temperature sensor. Each sample counts in KV
// `state`/`count`, is emitted to `readings` as {"n":N,"centi":C} (C = the sample in hundredths,
// rounded half away from zero), and an upward crossing of the `threshold_centi` variable also
// goes to `alerts` as {"n":N,"centi":C,"threshold":T}. The Rust, C and Zig watchers do exactly
// the same; the tests check that they emit the same events for the same samples.
import * as outpost from "../../../sdk-as/outpost";

function centi(value: f64): i64 {
  const scaled = value * 100.0;
  return <i64>(scaled + (scaled < 0 ? -0.5 : 0.5));
}

function parseInt64(text: string): i64 {
  // I64.parseInt accepts trailing junk; the other watchers refuse it, so check first.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!(c >= 48 && c <= 57) && !(i == 0 && (c == 45 || c == 43) && text.length > 1)) {
      throw new Error("not an integer: " + text);
    }
  }
  return I64.parseInt(text, 10);
}

export function outpost_handle(): i32 {
  const sample = outpost.sensorSample();
  if (sample === null || !isFinite(sample.value)) {
    outpost.error("expected a sensor payload with a finite sample");
    return outpost.ErrorCode.InvalidArgument;
  }
  const configured = outpost.configGet("threshold_centi");
  const threshold: i64 = configured === null ? 2500 : parseInt64(configured);

  const stored = outpost.kvGetString("state", "count");
  let count: i64 = 0;
  if (stored !== null) count = parseInt64(stored);
  count += 1;
  outpost.kvSetString("state", "count", count.toString());

  const now = centi(sample.value);
  outpost.emitString("readings", `{"n":${count},"centi":${now}}`);
  if (!isNaN(sample.previous) && centi(sample.previous) < threshold && now >= threshold) {
    outpost.emitString("alerts", `{"n":${count},"centi":${now},"threshold":${threshold}}`);
    outpost.warn("temperature crossed the threshold");
  }
  return 0;
}
