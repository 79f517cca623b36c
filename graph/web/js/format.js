// Dates, numbers and labels as the page shows them.

const DAY_MS = 24 * 60 * 60 * 1000;

export function percent(value, digits = 1) {
  return `${Number(value).toFixed(digits)}%`;
}

// The school's date (YYYY-MM-DD) in its own time zone: the API judges "today" the same way.
export function schoolToday(timeZone, now = new Date()) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(now);
  const part = (type) => parts.find((item) => item.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

export function addDays(isoDate, days) {
  const date = new Date(`${isoDate}T00:00:00Z`);
  return new Date(date.getTime() + days * DAY_MS).toISOString().slice(0, 10);
}

export function mondayOf(isoDate) {
  const weekday = (new Date(`${isoDate}T00:00:00Z`).getUTCDay() + 6) % 7; // Monday = 0
  return addDays(isoDate, -weekday);
}

export function shortDate(isoDate) {
  return new Date(`${isoDate}T00:00:00Z`).toLocaleDateString(undefined, {
    month: "short",
    day: "numeric",
    timeZone: "UTC",
  });
}

export function weekday(isoDate) {
  return new Date(`${isoDate}T00:00:00Z`).toLocaleDateString(undefined, {
    weekday: "short",
    timeZone: "UTC",
  });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function ago(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? "" : "s"} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} hour${hours === 1 ? "" : "s"} ago`;
  const days = Math.round(hours / 24);
  return `${days} days ago`;
}

export function ordinal(rank) {
  const tens = rank % 100;
  if (tens >= 11 && tens <= 13) return `${rank}th`;
  return `${rank}${{ 1: "st", 2: "nd", 3: "rd" }[rank % 10] ?? "th"}`;
}

export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export const STANDING_LABELS = {
  OK: "Good standing",
  TASDIQ: "Certificates due",
  WARNING: "Warning",
  MAHROOM: "Barred (Mahroom)",
};

export const STANDING_HINTS = {
  OK: "Your attendance is on track.",
  TASDIQ: "Upload medical certificates for your sick and leave days.",
  WARNING: "Your attendance is below the warning threshold.",
  MAHROOM: "Your attendance is at or below the barring threshold.",
};

export const TREND_LABELS = {
  IMPROVING: "Improving",
  DECLINING: "Declining",
  STABLE: "Stable",
};

export const STATUS_LABELS = {
  PRESENT: "Present",
  ABSENT: "Absent",
  SICK: "Sick",
  LEAVE: "Leave",
  NOT_MARKED: "Not marked",
};

export const FILE_STATUS_LABELS = {
  PENDING: "Waiting for scan",
  SCANNING: "Scanning",
  AWAITING_REVIEW: "Awaiting review",
  APPROVED: "Approved",
  REJECTED: "Rejected",
  QUARANTINED: "Quarantined",
};

// The statuses a tap on a student in the register goes through, in order.
export const STATUS_CYCLE = ["PRESENT", "ABSENT", "SICK", "LEAVE"];

// Anything else (NOT_MARKED) starts the cycle again at PRESENT.
export function nextStatus(status) {
  return STATUS_CYCLE[(STATUS_CYCLE.indexOf(status) + 1) % STATUS_CYCLE.length];
}
