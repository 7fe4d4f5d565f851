const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1_000],
];
const format = new Intl.RelativeTimeFormat("en", { numeric: "auto", style: "short" });

/** How long ago (or in how long) `iso` is from `now`, in the largest unit that fits: "3 min. ago". */
export function relativeTime(iso: string, now: number): string {
  const ms = Date.parse(iso) - now;
  if (Number.isNaN(ms)) return iso;
  if (Math.abs(ms) < 5_000) return "just now";
  const [unit, size] = UNITS.find(([, size]) => Math.abs(ms) >= size) ?? ["second", 1_000];
  return format.format(Math.round(ms / size), unit);
}
