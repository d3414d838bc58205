// Time-series line and area charts drawn as SVG by our own code (no
// third-party library, nothing inline that the CSP would refuse): a time
// axis with ticks on local-time boundaries, a y axis with "nice" ticks and
// units, several series with a legend, a hover / keyboard readout and an
// empty state. Colours come from app.css (`.chart .s0` ...), so light and
// dark follow the page.
//
//   const c = timeChart({ title: 'Latency', unit: 'ms', testid: 'chart-latency' });
//   c.set({ times: [ms, ...], stepMs, series: [{ name: 'p50', values: [v | null, ...] }], summary: '...' });
//   c.setState('loading' | 'error', message);

import { h, fill, formatTime } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const HEIGHT = 180;
const M = { top: 10, right: 14, bottom: 24 };
let chartSeq = 0;

/** An SVG element; attrs as plain attributes, `class` included. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A step of 1, 2, 2.5 or 5 times a power of ten giving about `count` intervals up to max. */
export function niceStep(max, count = 4) {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

/** Ticks 0, step, ... up to the first multiple of step at or above max. */
export function niceTicks(max, count = 4) {
  const step = niceStep(max, count);
  const top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const MIN = 60000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const TIME_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

/** Time ticks on local-time boundaries (whole minutes, hours, midnights), at most `max`. */
export function timeTicks(from, to, max = 6) {
  const span = to - from;
  const step = TIME_STEPS.find((st) => span / st <= max) || TIME_STEPS.at(-1);
  const ticks = [];
  if (step >= DAY) {
    const d = new Date(from);
    d.setHours(0, 0, 0, 0);
    const days = step / DAY;
    while (d.getTime() < from) d.setDate(d.getDate() + 1);
    for (; d.getTime() <= to; d.setDate(d.getDate() + days)) ticks.push(d.getTime());
  } else {
    // Align to the local clock, not to UTC (zones with half-hour offsets).
    const off = new Date(from).getTimezoneOffset() * MIN;
    for (let t = Math.ceil((from - off) / step) * step + off; t <= to; t += step) ticks.push(t);
  }
  return { ticks, step };
}

const two = (n) => String(n).padStart(2, '0');
const hm = (d) => `${two(d.getHours())}:${two(d.getMinutes())}`;
// A day tick: the month and day of the console's date format (2026-12-01).
const dayLabel = (d) => `${two(d.getMonth() + 1)}-${two(d.getDate())}`;

function tickLabel(t, step, span) {
  const d = new Date(t);
  if (step >= DAY) return dayLabel(d);
  if (span > DAY && d.getHours() === 0 && d.getMinutes() === 0) return dayLabel(d);
  return hm(d);
}

/** A bucket's time in the console's format (formatTime), with seconds only for sub-minute buckets. */
export function timeLabel(t, stepMs = MIN) {
  return formatTime(t, { seconds: stepMs < MIN });
}

/** Number with at most 3 significant digits, no exponent. */
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString();
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return String(Math.round(v * 10) / 10);
  if (a >= 1) return String(Math.round(v * 100) / 100);
  return String(Number(v.toPrecision(2)));
}

/** Value formatters per unit. */
export const UNITS = {
  ms: (v) => (v === null || v === undefined ? '—' : Math.abs(v) >= 1000 ? `${num(v / 1000)} s` : `${num(v)} ms`),
  '%': (v) => (v === null || v === undefined ? '—' : `${num(v)} %`),
};

/** "1 request", "1,204 requests". */
export const plural = (n, noun) => `${n.toLocaleString()} ${noun}${n === 1 ? '' : 's'}`;

/**
 * A chart component: returns { el, set(data), setState(state, message) }.
 * opts: title, unit (a UNITS key or a suffix like 'req/s'), testid, area
 * (fill under the first series), emptyText, description (for screen readers).
 * Series are drawn last-listed first, so the first lies on top; a `dash`
 * series is drawn wider and dashed, so a series equal to it stays visible
 * on top of it (p95 over p99).
 */
export function timeChart(opts) {
  const id = `chart${++chartSeq}`;
  const fmtFor = (unit) => UNITS[unit] || ((v) => (v === null || v === undefined ? '—' : `${num(v)}${unit ? ` ${unit}` : ''}`));
  let fmt = fmtFor(opts.unit);
  const readout = h('div', { class: 'chart-readout', testid: opts.testid ? `${opts.testid}-readout` : undefined, 'aria-live': 'off' });
  const legend = h('ul', { class: 'chart-legend', 'aria-hidden': 'true' });
  const plot = h('div', { class: 'chart-plot' });
  const el = h('figure', { class: 'chart', testid: opts.testid, 'data-state': 'loading' },
    h('figcaption', {}, h('h3', {}, opts.title), readout),
    plot, legend);
  let data = null;
  let state = 'loading';
  let message = '';
  let width = 0;
  let cursor = null;
  let summary = '';

  const draw = () => {
    el.dataset.state = state;
    width = plot.clientWidth || 520;
    if (state !== 'data') {
      readout.textContent = '';
      fill(legend);
      fill(plot, h('div', { class: `chart-state${state === 'error' ? ' error' : ''}`, role: state === 'error' ? 'alert' : 'status' },
        state === 'loading' ? h('div', { class: 'spinner boot-inline' }) : null, message || (state === 'loading' ? 'Loading…' : opts.emptyText || 'No data in this range.')));
      return;
    }
    fill(plot, svg());
    fill(legend, data.series.map((sr, i) => h('li', {}, h('span', { class: `swatch s${sr.color ?? i}${sr.dash ? ' dashed' : ''}` }), sr.name)));
    showReadout();
  };

  // Coordinates for the current width.
  const geo = () => {
    const { times, stepMs } = data;
    const from = data.from ?? times[0];
    const to = data.to ?? (times.at(-1) + (stepMs || 0));
    const max = Math.max(0, ...data.series.flatMap((sr) => sr.values.filter((v) => v !== null && Number.isFinite(v))));
    const yt = niceTicks(max || (opts.minMax ?? 1));
    // Room for the longest y label (11 px text, about 6.5 px a character).
    const left = Math.max(28, Math.ceil(Math.max(...yt.map((v) => fmt(v).length)) * 6.5) + 10);
    const iw = Math.max(10, width - left - M.right);
    const ih = HEIGHT - M.top - M.bottom;
    // A bucket is drawn at its middle.
    const half = (stepMs || 0) / 2;
    const x = (t) => left + ((t + half - from) / Math.max(1, to - from)) * iw;
    const y = (v) => M.top + ih - (v / yt.at(-1)) * ih;
    return { from, to, yt, left, iw, ih, x, y };
  };

  function svg() {
    const g = geo();
    const titleId = `${id}-title`;
    const descId = `${id}-desc`;
    const root = s('svg', {
      class: 'chart-svg', width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img',
      'aria-labelledby': titleId, 'aria-describedby': descId, tabindex: 0, focusable: 'true',
    },
    s('title', { id: titleId }, opts.title),
    s('desc', { id: descId }, describe()));
    // Grid and y axis.
    const axis = s('g', { class: 'axis' });
    for (const v of g.yt) {
      const yy = Math.round(g.y(v)) + 0.5;
      axis.append(s('line', { class: 'gridline', x1: g.left, x2: g.left + g.iw, y1: yy, y2: yy }));
      axis.append(s('text', { x: g.left - 6, y: yy + 4, 'text-anchor': 'end' }, fmt(v)));
    }
    const { ticks, step } = timeTicks(g.from, g.to, Math.max(2, Math.floor(g.iw / 64)));
    for (const t of ticks) {
      const xx = Math.round(g.left + ((t - g.from) / Math.max(1, g.to - g.from)) * g.iw) + 0.5;
      axis.append(s('line', { class: 'tick', x1: xx, x2: xx, y1: M.top + g.ih, y2: M.top + g.ih + 4 }));
      axis.append(s('text', { x: xx, y: HEIGHT - 6, 'text-anchor': 'middle' }, tickLabel(t, step, g.to - g.from)));
    }
    axis.append(s('line', { class: 'base', x1: g.left, x2: g.left + g.iw, y1: M.top + g.ih + 0.5, y2: M.top + g.ih + 0.5 }));
    root.append(axis);
    // Series: a path per run of non-null values; lone values as dots. The
    // first-listed is drawn last, on top.
    data.series.map((sr, i) => [sr, i]).reverse().forEach(([sr, i]) => {
      const cls = `s${sr.color ?? i}${sr.dash ? ' dashed' : ''}`;
      const runs = [];
      let run = [];
      sr.values.forEach((v, k) => {
        if (v === null || v === undefined || !Number.isFinite(v)) { if (run.length) runs.push(run); run = []; return; }
        run.push([g.x(data.times[k]), g.y(v)]);
      });
      if (run.length) runs.push(run);
      const gs = s('g', { class: `series ${cls}`, 'data-series': sr.key || sr.name });
      const line = runs.filter((r) => r.length > 1).map((r) => r.map(([px, py], k) => `${k ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('')).join('');
      if (opts.area && i === 0 && line) {
        const base = (M.top + g.ih).toFixed(1);
        const area = runs.filter((r) => r.length > 1).map((r) => `M${r[0][0].toFixed(1)},${base}${r.map(([px, py]) => `L${px.toFixed(1)},${py.toFixed(1)}`).join('')}L${r.at(-1)[0].toFixed(1)},${base}Z`).join('');
        gs.append(s('path', { class: 'area', d: area }));
      }
      if (line) gs.append(s('path', { class: 'line', d: line }));
      for (const r of runs.filter((rr) => rr.length === 1)) gs.append(s('circle', { class: 'point', cx: r[0][0].toFixed(1), cy: r[0][1].toFixed(1), r: 3 }));
      root.append(gs);
    });
    // Hover / keyboard cursor.
    const rule = s('line', { class: 'cursor', y1: M.top, y2: M.top + g.ih, visibility: 'hidden' });
    const dots = data.series.map((sr, i) => s('circle', { class: `focus s${sr.color ?? i}`, r: 4, visibility: 'hidden' }));
    root.append(rule, ...dots);
    const place = () => {
      if (cursor === null) { rule.setAttribute('visibility', 'hidden'); dots.forEach((d) => d.setAttribute('visibility', 'hidden')); return; }
      const xx = g.x(data.times[cursor]);
      rule.setAttribute('x1', xx); rule.setAttribute('x2', xx); rule.setAttribute('visibility', 'visible');
      data.series.forEach((sr, i) => {
        const v = sr.values[cursor];
        const ok = v !== null && v !== undefined && Number.isFinite(v);
        dots[i].setAttribute('visibility', ok ? 'visible' : 'hidden');
        if (ok) { dots[i].setAttribute('cx', xx); dots[i].setAttribute('cy', g.y(v)); }
      });
    };
    // A little wider than the plot, so the points on its edges are easy to reach.
    const hit = s('rect', { class: 'hit', x: g.left - 6, y: M.top, width: g.iw + 12, height: g.ih });
    hit.addEventListener('pointermove', (e) => {
      const box = root.getBoundingClientRect();
      const t = g.from + ((e.clientX - box.left - g.left) / g.iw) * (g.to - g.from) - (data.stepMs || 0) / 2;
      cursor = nearest(t);
      place();
      showReadout();
    });
    hit.addEventListener('pointerleave', () => { cursor = null; place(); showReadout(); });
    root.addEventListener('keydown', (e) => {
      const n = data.times.length;
      if (!n) return;
      if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
        e.preventDefault();
        cursor = cursor === null ? n - 1 : Math.max(0, Math.min(n - 1, cursor + (e.key === 'ArrowLeft' ? -1 : 1)));
      } else if (e.key === 'Escape') cursor = null;
      else return;
      place();
      showReadout();
    });
    root.addEventListener('blur', () => { cursor = null; place(); showReadout(); });
    root.append(hit);
    return root;
  }

  function nearest(t) {
    let best = 0;
    data.times.forEach((tt, k) => { if (Math.abs(tt - t) < Math.abs(data.times[best] - t)) best = k; });
    return best;
  }

  function showReadout() {
    if (cursor === null) {
      readout.classList.remove('hover');
      readout.textContent = summary;
      return;
    }
    readout.classList.add('hover');
    // Counts beside rates: "5xx 25 % (1 of 4 requests)", or the bucket's
    // request count when the series have none of their own.
    const n = data.counts?.[cursor];
    const noun = data.countNoun || 'request';
    const of = (sr) => (sr.counts && n ? ` (${sr.counts[cursor] ?? 0} of ${plural(n, noun)})` : '');
    fill(readout, h('span', { class: 'muted' }, timeLabel(data.times[cursor], data.stepMs)), ' ',
      data.series.map((sr, i) => h('span', { class: 'chart-value' }, h('span', { class: `swatch s${sr.color ?? i}${sr.dash ? ' dashed' : ''}` }), `${sr.name} ${fmt(sr.values[cursor])}${of(sr)}`)),
      n === 0 || (n != null && !data.series.some((sr) => sr.counts)) ? h('span', { class: 'chart-value muted' }, n ? plural(n, noun) : `no ${noun}s`) : null);
  }

  function describe() {
    const parts = data.series.map((sr) => {
      let peak = null;
      sr.values.forEach((v, k) => { if (v !== null && Number.isFinite(v) && (peak === null || v > sr.values[peak])) peak = k; });
      return peak === null ? `${sr.name}: no data` : `${sr.name} peaks at ${fmt(sr.values[peak])} at ${timeLabel(data.times[peak], data.stepMs)}`;
    });
    return `${summary ? `${summary}. ` : ''}${parts.join('; ')}. From ${timeLabel(geo().from)} to ${timeLabel(geo().to)}.`;
  }

  // Redraw at the new width (the SVG is drawn in CSS pixels, so text never scales).
  if ('ResizeObserver' in window) {
    new ResizeObserver(() => { if (state === 'data' && Math.abs((plot.clientWidth || 0) - width) > 2) draw(); }).observe(plot);
  }

  return {
    el,
    format: (v) => fmt(v),
    /**
     * data: { times: [ms], stepMs, from?, to?, unit?, summary?, empty?,
     *   counts?: [n] (requests per bucket, shown in the readout), countNoun?,
     *   series: [{ name, key?, color?, dash?, values, counts? (of the bucket's n) }] }
     */
    set(d) {
      data = d;
      fmt = fmtFor(d.unit || opts.unit);
      summary = d.summary || '';
      if (cursor !== null && cursor >= d.times.length) cursor = null;
      const any = d.series.some((sr) => sr.values.some((v) => v !== null && v !== undefined && Number.isFinite(v)));
      state = d.empty || !any || !d.times.length ? 'empty' : 'data';
      message = typeof d.empty === 'string' ? d.empty : '';
      draw();
    },
    setState(st, msg = '') {
      state = st;
      message = msg;
      draw();
    },
  };
}
