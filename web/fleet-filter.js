// Rules of the fleet view's filter and grouping: which devices a search, status and farm
// filter keep, which farm group a device belongs to, and the per-status counts of the
// devices the search and farm filter keep. No DOM work beyond the farm filter's options.

/** Group key of the devices that belong to no farm. It sorts after every farm. */
export const NO_FARM = '';
export const NO_FARM_LABEL = 'No farm';
/** Farm filter value that keeps every farm. */
export const ALL_FARMS = '*';

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** Returns the farm group key of a device: its farm, or NO_FARM. */
export function farmKey(device) {
  return typeof device.farm === 'string' && device.farm !== '' ? device.farm : NO_FARM;
}

/** Returns the heading of a farm group. */
export function farmLabel(key) {
  return key === NO_FARM ? NO_FARM_LABEL : key;
}

/** Orders farm group keys: farms in natural order, then the devices without a farm. */
export function compareFarmKeys(a, b) {
  if (a === b) return 0;
  if (a === NO_FARM) return 1;
  if (b === NO_FARM) return -1;
  return collator.compare(a, b);
}

/**
 * Returns whether the search text matches the device's name, id, type or farm. `text` is
 * already trimmed and lower-cased; an empty text matches every device.
 */
export function matchesText(device, text) {
  if (text === '') return true;
  const fields = [device.id, device.type, device.name, device.farm];
  return fields.some((field) => typeof field === 'string' && field.toLowerCase().includes(text));
}

/** Returns whether the device passes the farm filter (ALL_FARMS, NO_FARM or a farm id). */
export function matchesFarm(device, farm) {
  return farm === ALL_FARMS || farmKey(device) === farm;
}

/**
 * Returns whether a device with `status` (from deviceStatus: `online` and `alarmCount`)
 * passes the status filter: `all`, `online`, `offline` or `alarm`.
 */
export function matchesStatus(status, statusFilter) {
  switch (statusFilter) {
    case 'online':
      return status.online;
    case 'offline':
      return !status.online;
    case 'alarm':
      return status.alarmCount > 0;
    default:
      return true;
  }
}

/** Returns whether the device passes the whole filter `{text, status, farm}`. */
export function matchesFilter(device, status, filter) {
  return (
    matchesStatus(status, filter.status) &&
    matchesFarm(device, filter.farm) &&
    matchesText(device, filter.text)
  );
}

/**
 * Counts the devices that the search and farm filter keep, by status, so that each count
 * equals the number of tiles that status filter shows: `{total, online, offline, alarm}`.
 * `statusOf(device)` returns the device's status as deviceStatus does.
 */
export function countByStatus(devices, filter, statusOf) {
  const counts = { total: 0, online: 0, offline: 0, alarm: 0 };
  for (const device of devices) {
    if (!matchesFarm(device, filter.farm) || !matchesText(device, filter.text)) continue;
    const status = statusOf(device);
    counts.total++;
    if (status.online) counts.online++;
    else counts.offline++;
    if (status.alarmCount > 0) counts.alarm++;
  }
  return counts;
}

/**
 * Keeps the farm filter's options equal to `farmKeys` (group keys, NO_FARM included),
 * after its first option, which keeps every farm. A selected farm that no device has any
 * more stays listed, so that the filter never changes under the operator.
 */
export function renderFarmOptions(select, farmKeys) {
  const keys = new Set(farmKeys);
  if (select.value !== ALL_FARMS) keys.add(select.value);
  const ordered = [...keys].sort(compareFarmKeys);
  const current = [...select.options].slice(1).map((option) => option.value);
  if (current.length === ordered.length && current.every((key, i) => key === ordered[i])) return;

  const selected = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const key of ordered) select.add(new Option(farmLabel(key), key));
  select.value = selected;
}
