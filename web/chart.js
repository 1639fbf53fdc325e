// Canvas line chart for one time series. The x values are epoch milliseconds shown in UTC,
// the y values are numbers. The chart reads its points through a series object with
// `length`, `x(i)` and `y(i)`, and it expects x to be non-decreasing in i.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// Tick spacings for the time axis, each a divisor of the next larger unit so that ticks
// fall on round UTC times.
const TIME_STEPS = [
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY,
];

const COLORS = {
  text: '#3e4c59',
  muted: '#616e7c',
  grid: '#e4e7eb',
  axis: '#9aa5b1',
  line: '#1d4ed8',
  fill: 'rgba(29, 78, 216, 0.08)',
  hover: '#1f2933',
  empty: '#7b8794',
};

const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const TITLE_FONT = '600 12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

function pad2(n) {
  return String(n).padStart(2, '0');
}

/** Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS UTC`. */
export function formatUtcDateTime(ms) {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

function formatUtcDate(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function formatTimeTick(ms, step, spansDays) {
  const d = new Date(ms);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  const md = `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  if (step >= DAY) return md;
  if (step < MINUTE) return `${hm}:${pad2(d.getUTCSeconds())}`;
  return spansDays ? `${md} ${hm}` : hm;
}

/** Rounds a positive step up to 1, 2, 2.5 or 5 times a power of ten. */
function niceStep(roughStep) {
  const base = 10 ** Math.floor(Math.log10(roughStep));
  const fraction = roughStep / base;
  if (fraction <= 1) return base;
  if (fraction <= 2) return 2 * base;
  if (fraction <= 2.5) return 2.5 * base;
  if (fraction <= 5) return 5 * base;
  return 10 * base;
}

function decimalsOf(step) {
  for (let decimals = 0; decimals < 12; decimals++) {
    const scaled = step * 10 ** decimals;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * scaled) return decimals;
  }
  return 12;
}

/**
 * Computes round tick values covering [min, max] with about `targetCount` ticks and
 * a step of at least `minStep`. Returns the widened range, the ticks and the decimals
 * needed to print them.
 */
export function niceTicks(min, max, targetCount, minStep = 0) {
  if (!(max > min)) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const step = Math.max(minStep, niceStep((max - min) / Math.max(1, targetCount - 1)));
  const decimals = decimalsOf(step);
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i++) {
    ticks.push(Number((i * step).toFixed(decimals)));
  }
  return { min: ticks[0], max: ticks[ticks.length - 1], ticks, decimals };
}

function timeTicks(min, max, targetCount) {
  const span = max - min;
  let step = TIME_STEPS.find((candidate) => span / candidate <= targetCount);
  if (step === undefined) step = niceStep(span / targetCount / DAY) * DAY;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push(t);
  return { ticks, step };
}

function lowerBound(series, x) {
  let lo = 0;
  let hi = series.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (series.x(mid) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function nearestIndex(series, x) {
  if (series.length === 0) return -1;
  const i = lowerBound(series, x);
  if (i === 0) return 0;
  if (i >= series.length) return series.length - 1;
  return x - series.x(i - 1) <= series.x(i) - x ? i - 1 : i;
}

const EMPTY_SERIES = { length: 0, x: () => 0, y: () => 0 };

export class LineChart {
  /**
   * Creates a chart that fills `host`, whose CSS sets its size.
   * Options: `title` (y axis title), `formatValue(y)` for labels and the tooltip,
   * `emptyText` shown while the series has no point.
   */
  constructor(host, options = {}) {
    this.host = host;
    this.title = options.title ?? '';
    this.formatValue = options.formatValue ?? ((y) => String(y));
    this.emptyText = options.emptyText ?? 'No data yet';
    this.series = EMPTY_SERIES;
    // Pointer position over the canvas in CSS pixels, or null. The hovered point is looked
    // up on each draw because new points shift the indices of the old ones.
    this.hoverX = null;
    this.frame = 0;
    this.layout = null;

    host.classList.add('chart');
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'chart-tooltip';
    this.tooltip.hidden = true;
    host.append(this.canvas, this.tooltip);
    this.context = this.canvas.getContext('2d');

    this.onPointerMove = (event) => this.updateHover(event);
    this.onPointerLeave = () => this.clearHover();
    this.canvas.addEventListener('pointermove', this.onPointerMove);
    this.canvas.addEventListener('pointerdown', this.onPointerMove);
    this.canvas.addEventListener('pointerleave', this.onPointerLeave);

    this.resizeObserver = new ResizeObserver(() => this.invalidate());
    this.resizeObserver.observe(host);
    this.watchPixelRatio();
  }

  /** Replaces the series and schedules a redraw. */
  setSeries(series) {
    this.series = series ?? EMPTY_SERIES;
    this.invalidate();
  }

  /** Schedules a redraw on the next animation frame, at most one per frame. */
  invalidate() {
    if (this.frame || !this.context) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Stops observing size and pixel-ratio changes and removes the chart's elements. */
  destroy() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.resizeObserver.disconnect();
    this.pixelRatioQuery?.removeEventListener('change', this.onPixelRatioChange);
    this.canvas.remove();
    this.tooltip.remove();
    this.context = null;
  }

  // A devicePixelRatio change (browser zoom, moving the window to another screen) does
  // not always resize the host, so the chart listens for it separately.
  watchPixelRatio() {
    this.pixelRatioQuery?.removeEventListener('change', this.onPixelRatioChange);
    this.onPixelRatioChange = () => {
      this.watchPixelRatio();
      this.invalidate();
    };
    this.pixelRatioQuery = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    this.pixelRatioQuery.addEventListener('change', this.onPixelRatioChange);
  }

  draw() {
    const ctx = this.context;
    if (!ctx) return;
    const width = this.host.clientWidth;
    const height = this.host.clientHeight;
    if (width === 0 || height === 0) return;

    const ratio = window.devicePixelRatio || 1;
    const pixelWidth = Math.round(width * ratio);
    const pixelHeight = Math.round(height * ratio);
    if (this.canvas.width !== pixelWidth || this.canvas.height !== pixelHeight) {
      this.canvas.width = pixelWidth;
      this.canvas.height = pixelHeight;
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;

    const series = this.series;
    if (series.length === 0) {
      this.layout = null;
      ctx.fillStyle = COLORS.empty;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(this.emptyText, width / 2, height / 2);
      this.canvas.setAttribute('aria-label', `${this.title}: ${this.emptyText}`);
      return;
    }

    const layout = this.computeLayout(ctx, width, height);
    this.layout = layout;
    this.drawGrid(ctx, layout);
    this.drawLine(ctx, layout);
    this.drawHover(ctx, layout);

    const last = series.length - 1;
    this.canvas.setAttribute(
      'aria-label',
      `${this.title}: ${series.length} points, latest ${this.formatValue(series.y(last))} ` +
        `at ${formatUtcDateTime(series.x(last))}`,
    );
  }

  computeLayout(ctx, width, height) {
    const series = this.series;
    let yMin = Infinity;
    let yMax = -Infinity;
    let integersOnly = true;
    for (let i = 0; i < series.length; i++) {
      const y = series.y(i);
      if (y < yMin) yMin = y;
      if (y > yMax) yMax = y;
      if (!Number.isInteger(y)) integersOnly = false;
    }
    let xMin = series.x(0);
    let xMax = series.x(series.length - 1);
    if (xMax === xMin) {
      xMin -= MINUTE;
      xMax += MINUTE;
    }

    const top = 12;
    const bottom = 44;
    const right = 16;
    const plotHeight = Math.max(20, height - top - bottom);
    const yScale = niceTicks(
      yMin,
      yMax,
      Math.max(2, Math.floor(plotHeight / 40) + 1),
      integersOnly ? 1 : 0,
    );
    const yLabels = yScale.ticks.map((tick) => tick.toFixed(yScale.decimals));
    const labelWidth = Math.max(...yLabels.map((label) => ctx.measureText(label).width));
    const left = Math.ceil(labelWidth) + 30;
    const plotWidth = Math.max(20, width - left - right);
    const xScale = timeTicks(xMin, xMax, Math.max(2, Math.floor(plotWidth / 90)));

    return {
      width,
      height,
      left,
      top,
      plotWidth,
      plotHeight,
      xMin,
      xMax,
      yScale,
      yLabels,
      xScale,
      toX: (x) => left + ((x - xMin) / (xMax - xMin)) * plotWidth,
      toY: (y) => top + (1 - (y - yScale.min) / (yScale.max - yScale.min)) * plotHeight,
    };
  }

  drawGrid(ctx, layout) {
    const { left, top, plotWidth, plotHeight, yScale, yLabels, xScale } = layout;
    const bottomEdge = top + plotHeight;

    ctx.lineWidth = 1;
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    yScale.ticks.forEach((tick, i) => {
      const y = Math.round(layout.toY(tick)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotWidth, y);
      ctx.stroke();
      ctx.fillText(yLabels[i], left - 6, y);
    });

    const spansDays = formatUtcDate(layout.xMin) !== formatUtcDate(layout.xMax);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const tick of xScale.ticks) {
      const x = Math.round(layout.toX(tick)) + 0.5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottomEdge);
      ctx.stroke();
      ctx.strokeStyle = COLORS.axis;
      ctx.beginPath();
      ctx.moveTo(x, bottomEdge);
      ctx.lineTo(x, bottomEdge + 4);
      ctx.stroke();
      const label = formatTimeTick(tick, xScale.step, spansDays);
      const halfWidth = ctx.measureText(label).width / 2;
      // Labels at the ends are shifted inward to stay clear of the y labels and the edge.
      const labelX = Math.min(Math.max(x, left + halfWidth - 4), layout.width - halfWidth - 2);
      ctx.fillText(label, labelX, bottomEdge + 6);
    }

    ctx.strokeStyle = COLORS.axis;
    ctx.beginPath();
    ctx.moveTo(left + 0.5, top);
    ctx.lineTo(left + 0.5, bottomEdge + 0.5);
    ctx.lineTo(left + plotWidth, bottomEdge + 0.5);
    ctx.stroke();

    const firstDate = formatUtcDate(layout.xMin);
    const lastDate = formatUtcDate(layout.xMax);
    const dates = firstDate === lastDate ? firstDate : `${firstDate} to ${lastDate}`;
    ctx.font = TITLE_FONT;
    ctx.fillStyle = COLORS.muted;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText(`device time (UTC), ${dates}`, left + plotWidth / 2, layout.height - 2);

    ctx.save();
    ctx.translate(12, top + plotHeight / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(this.title, 0, 0);
    ctx.restore();
    ctx.font = FONT;
  }

  drawLine(ctx, layout) {
    const series = this.series;
    const { left, top, plotWidth, plotHeight, toX, toY } = layout;
    const bottomEdge = top + plotHeight;

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 4, plotWidth + 4, plotHeight + 8);
    ctx.clip();

    // Updates carry only the keys that changed, so a value stays in effect until the next
    // point, and the line steps instead of interpolating.
    ctx.beginPath();
    let previousY = toY(series.y(0));
    ctx.moveTo(toX(series.x(0)), previousY);
    for (let i = 1; i < series.length; i++) {
      const x = toX(series.x(i));
      const y = toY(series.y(i));
      ctx.lineTo(x, previousY);
      ctx.lineTo(x, y);
      previousY = y;
    }
    ctx.lineJoin = 'round';
    ctx.lineWidth = 1.75;
    ctx.strokeStyle = COLORS.line;
    ctx.stroke();

    ctx.lineTo(toX(series.x(series.length - 1)), bottomEdge);
    ctx.lineTo(toX(series.x(0)), bottomEdge);
    ctx.closePath();
    ctx.fillStyle = COLORS.fill;
    ctx.fill();

    const last = series.length - 1;
    ctx.beginPath();
    ctx.arc(toX(series.x(last)), toY(series.y(last)), 3, 0, 2 * Math.PI);
    ctx.fillStyle = COLORS.line;
    ctx.fill();
    ctx.restore();
  }

  drawHover(ctx, layout) {
    if (this.hoverX === null) {
      this.tooltip.hidden = true;
      return;
    }
    const fraction = (this.hoverX - layout.left) / layout.plotWidth;
    const index = nearestIndex(this.series, layout.xMin + fraction * (layout.xMax - layout.xMin));
    const x = layout.toX(this.series.x(index));
    const y = layout.toY(this.series.y(index));

    ctx.save();
    ctx.strokeStyle = COLORS.axis;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, layout.top);
    ctx.lineTo(Math.round(x) + 0.5, layout.top + layout.plotHeight);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.arc(x, y, 4.5, 0, 2 * Math.PI);
    ctx.fillStyle = '#ffffff';
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = COLORS.hover;
    ctx.stroke();
    ctx.restore();

    this.tooltip.textContent = '';
    const value = document.createElement('strong');
    value.textContent = this.formatValue(this.series.y(index));
    const time = document.createElement('span');
    time.textContent = formatUtcDateTime(this.series.x(index));
    this.tooltip.append(value, time);
    this.tooltip.hidden = false;

    const tipWidth = this.tooltip.offsetWidth;
    const tipHeight = this.tooltip.offsetHeight;
    let tipLeft = x + 12;
    if (tipLeft + tipWidth > layout.width - 4) tipLeft = x - 12 - tipWidth;
    let tipTop = y - tipHeight - 10;
    if (tipTop < 0) tipTop = y + 12;
    this.tooltip.style.transform = `translate(${Math.max(0, tipLeft)}px, ${tipTop}px)`;
  }

  updateHover(event) {
    this.hoverX = event.clientX - this.canvas.getBoundingClientRect().left;
    this.invalidate();
  }

  clearHover() {
    if (this.hoverX === null) return;
    this.hoverX = null;
    this.invalidate();
  }
}
