// The chart of a station's readings, for the monitoring panel (monitor.js): one datastream's
// observations of the last HOURS hours, read from the platform's SensorThings API
// (GET /sta/v1.1/Datastreams(id)/Observations, following @iot.nextLink), drawn with uPlot
// (vendored from npm under /vendor, like MapLibre; imported when the first chart opens) with
// the datastream's alarm thresholds as dashed level lines.
//
// For the browser tests: .monitor-chart carries data-state (loading, done, failed),
// data-datastream, data-points (readings drawn) and data-series (the series' labels, the
// readings first, then one per threshold line, joined by '|'), data-thresholds
// ('level:value' joined by ','); chart() (window.spatialMonitor.chart()) says the same with
// the drawn values.

import { t } from './i18n.js';
import { element, getJSON } from './common.js';

export const HOURS = 48;
const PAGES = 20;
/** At most this many pages of $top=1000 readings (a reading a few seconds apart for 48 h). */
const TOP = 1000;
const LINE = '#1c6fb8';
const HEIGHT = 210;
const ABOVE_SHOWN = 2;
/** Threshold lines drawn above the highest reading (the next levels up; AQI has five). */

let uPlotModule = null;

const pad = (n) => String(n).padStart(2, '0');
/** A time axis' tick, on a 24-hour clock: the date at midnight, else the time. */
const tick = (seconds) => {
  const d = new Date(seconds * 1000);
  return d.getHours() || d.getMinutes() ? `${pad(d.getHours())}:${pad(d.getMinutes())}`
    : `${d.getMonth() + 1}/${d.getDate()}`;
};
const moment = (seconds) => (seconds === null || seconds === undefined ? '—'
  : new Date(seconds * 1000).toLocaleString('zh-CN', {
    month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
  }));

function uPlotLoaded() {
  uPlotModule ??= import('../../vendor/uplot/dist/uPlot.esm.js').then((m) => m.default);
  return uPlotModule;
}

/** The readings of a datastream since ``since`` (ms): [[seconds...], [values...]]. */
async function readings(sta, datastream, since, signal) {
  const query = new URLSearchParams({
    $orderby: 'phenomenonTime asc', $top: String(TOP), $select: 'phenomenonTime,result',
    $filter: `phenomenonTime ge ${new Date(since).toISOString().replace(/\.\d+Z$/, 'Z')}`,
  });
  let url = `${sta}/Datastreams(${datastream})/Observations?${query}`;
  const xs = [];
  const ys = [];
  for (let page = 0; url && page < PAGES; page += 1) {
    const found = await getJSON(url, { signal });
    for (const o of found.value || []) {
      // (an interval's phenomenonTime "start/end": the reading is drawn at its end)
      const t = Date.parse(String(o.phenomenonTime).split('/').at(-1));
      if (Number.isNaN(t)) continue;
      xs.push(t / 1000);
      ys.push(typeof o.result === 'number' && Number.isFinite(o.result) ? o.result : null);
    }
    url = found['@iot.nextLink'] || null;
  }
  return [xs, ys];
}

/** The thresholds drawn: those at or under the highest reading, and ABOVE_SHOWN more. */
function shownThresholds(thresholds, values) {
  const sorted = [...(thresholds || [])].filter((t) => Number.isFinite(t.above))
    .sort((a, b) => a.above - b.above);
  const top = Math.max(...values.filter((v) => v !== null), -Infinity);
  const under = sorted.filter((t) => t.above <= top);
  return [...under, ...sorted.slice(under.length, under.length + ABOVE_SHOWN)];
}

export class Chart {
  /** ``levels``: level id -> {label, color} (the map's). */
  constructor(sta, levels) {
    this.sta = sta;
    this.levels = levels;
    this.plot = null;
    this.asked = null;
    this.root = element('div', { className: 'monitor-chart' });
    this.root.dataset.state = 'idle';
  }

  /** Draw ``datastream`` (an entry of /alarms/status: id, name, property, unit,
   * thresholds) in ``holder``; a newer call cancels an older one still reading. */
  async show(datastream, holder) {
    this.asked?.abort();
    const asked = new AbortController();
    this.asked = asked;
    const until = Date.now();
    const since = until - HOURS * 3600_000;
    Object.assign(this.root.dataset, { state: 'loading', datastream: String(datastream.id) });
    if (this.root.parentElement !== holder) holder.append(this.root);
    let data;
    let uPlot;
    try {
      [data, uPlot] = await Promise.all([
        readings(this.sta, datastream.id, since, asked.signal), uPlotLoaded(),
      ]);
    } catch (error) {
      if (asked.signal.aborted) return;
      this.root.dataset.state = 'failed';
      this.root.replaceChildren(element('p', { className: 'problem', textContent: error.message }));
      throw error;
    }
    if (asked.signal.aborted) return;
    this.draw(uPlot, datastream, data, [since / 1000, until / 1000]);
  }

  draw(uPlot, datastream, [xs, ys], range) {
    const lines = shownThresholds(datastream.thresholds, ys);
    const unit = datastream.unit ? ` ${datastream.unit}` : '';
    const series = [
      { label: t('Time'), value: (u, seconds) => moment(seconds) },
      { label: `${datastream.property || datastream.name}${unit ? ` (${datastream.unit})` : ''}`,
        stroke: LINE, width: 2, spanGaps: false, points: { show: xs.length < 80, size: 4 } },
      ...lines.map((t) => ({
        label: `${this.levels.get(t.level)?.label || t.level}: > ${t.above}${unit}`,
        stroke: this.levels.get(t.level)?.color || '#e03131', width: 1.5, dash: [6, 4],
        points: { show: false },
      })),
    ];
    const data = [xs, ys, ...lines.map((t) => xs.map(() => t.above))];
    if (!xs.length) { // the lines still show where the levels are
      data[0] = range;
      data[1] = [null, null];
      for (const [n, t] of lines.entries()) data[n + 2] = [t.above, t.above];
    }
    this.plot?.destroy();
    const empty = xs.length ? [] : [element('p', { className: 'empty',
      textContent: t('No reading in the last {h} h', { h: HOURS }) })];
    const canvas = element('div', { className: 'plot' });
    this.root.replaceChildren(...empty, canvas);
    const width = Math.max(240, Math.floor(this.root.getBoundingClientRect().width) || 300);
    this.plot = new uPlot({
      width, height: HEIGHT, series,
      scales: { x: { time: true, range: () => range } },
      axes: [{ size: 32, values: (u, splits) => splits.map(tick) }, { size: 46 }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, data, canvas);
    this.lines = lines;
    this.points = xs.length;
    Object.assign(this.root.dataset, {
      state: 'done', points: String(xs.length), series: series.slice(1).map((s) => s.label).join('|'),
      thresholds: lines.map((t) => `${t.level}:${t.above}`).join(','),
    });
  }

  /** What the chart shows (for the tests and a user's console). */
  describe() {
    if (!this.plot) return { state: this.root.dataset.state };
    return {
      state: this.root.dataset.state,
      datastream: Number(this.root.dataset.datastream),
      points: this.points,
      series: this.plot.series.slice(1).map((s, n) => ({
        label: s.label, stroke: typeof s.stroke === 'function' ? s.stroke(this.plot, n + 1) : s.stroke,
      })),
      thresholds: this.lines.map((t) => ({ level: t.level, above: t.above })),
      values: this.plot.data[1].slice(0, this.points),
      canvas: Boolean(this.root.querySelector('canvas')),
    };
  }

  close() {
    this.asked?.abort();
    this.plot?.destroy();
    this.plot = null;
    this.root.remove();
    this.root.dataset.state = 'idle';
  }
}
