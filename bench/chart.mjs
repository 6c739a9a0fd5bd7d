// Draws docs/bench.svg from a results file written by bench/run.mjs (hand-written SVG).
//
//   node bench/chart.mjs [--in=bench/results/latest.json] [--out=docs/bench.svg] [--baseline=mapkv]
//
// One group per workload; one bar per peer store = the baseline's ratio to that peer, on a log
// scale centred on 1x. Bars right of the 1x line: the baseline is better (faster, or smaller /
// lower for size, RSS and open time).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m) {
      console.error(`unknown argument '${a}'`);
      process.exit(2);
    }
    return [m[1], m[2]];
  }),
);
const inFile = path.resolve(args.in ?? path.join(BENCH_DIR, 'results/latest.json'));
const outFile = path.resolve(args.out ?? path.join(ROOT, 'docs/bench.svg'));
const data = JSON.parse(fs.readFileSync(inFile, 'utf8'));
const base = args.baseline ?? data.baseline ?? 'mapkv';

const LOWER_IS_BETTER = new Set(['bytes', 'ms']);
const TITLES = {
  getDecoded: 'random get (decoded)',
  getRaw: 'random get (raw bytes)',
  scan: 'full ordered scan',
  range100: 'range of 100 keys',
  bulkLoad: 'bulk load, one txn',
  putBatched: 'async batched puts',
  putDurable: 'durable 1-put commits',
  mixed: 'mixed 95% get / 5% put',
  fileSize: 'file size after load',
  peakRss: 'peak RSS',
  coldOpen: 'cold open + first get',
};
const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1'];

const peers = [
  ...new Set(Object.values(data.results).flatMap((byStore) => Object.keys(byStore))),
].filter((s) => s !== base);

const groups = [];
const order = [
  ...Object.keys(TITLES).filter((w) => w in data.results),
  ...Object.keys(data.results).filter((w) => !(w in TITLES)),
];
for (const workload of order) {
  const byStore = data.results[workload];
  const b = byStore[base]?.median;
  if (!b) continue;
  const bars = [];
  for (const peer of peers) {
    const p = byStore[peer]?.median;
    if (!p) continue;
    const lower = LOWER_IS_BETTER.has(byStore[peer].unit);
    bars.push({ peer, ratio: lower ? p / b : b / p });
  }
  if (bars.length) groups.push({ workload, bars });
}
if (groups.length === 0) {
  console.error(`${path.relative(process.cwd(), inFile)} has no results for baseline '${base}'`);
  console.error('(run the bench with that store, or pass --baseline=<store that ran>)');
  process.exit(1);
}

// Log scale, symmetric around 1x, at least 0.25x..4x, with room for the value labels.
const maxLog = Math.max(
  Math.log2(4),
  ...groups.flatMap((g) => g.bars.map((b) => Math.abs(Math.log2(b.ratio)))),
);
const span = Math.ceil(maxLog + 0.4);

const W = 900;
const labelW = 210;
const plotX = labelW + 10;
const plotW = W - plotX - 70;
const barH = 14;
const barGap = 3;
const groupGap = 14;
const top = 78;
const x = (ratio) => plotX + ((Math.log2(ratio) + span) / (2 * span)) * plotW;

const esc = (s) =>
  String(s).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );

const parts = [];
let y = top;
for (const g of groups) {
  const h = g.bars.length * (barH + barGap) - barGap;
  parts.push(
    `<text x="${labelW}" y="${y + h / 2 + 4}" text-anchor="end" class="label">${esc(TITLES[g.workload] ?? g.workload)}</text>`,
  );
  for (const b of g.bars) {
    const color = COLORS[peers.indexOf(b.peer) % COLORS.length];
    const x0 = x(1);
    const x1 = x(Math.min(Math.max(b.ratio, 2 ** -span), 2 ** span));
    const left = Math.min(x0, x1);
    const width = Math.max(1, Math.abs(x1 - x0));
    const text = `${b.ratio.toFixed(2)}x`;
    const tx = b.ratio >= 1 ? left + width + 4 : left - 4;
    const anchor = b.ratio >= 1 ? 'start' : 'end';
    parts.push(
      `<rect x="${left.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(`${base} vs ${b.peer}: ${text}`)}</title></rect>`,
      `<text x="${tx.toFixed(1)}" y="${y + barH - 3}" text-anchor="${anchor}" class="value">${text}</text>`,
    );
    y += barH + barGap;
  }
  y += groupGap - barGap;
}
const plotBottom = y - groupGap + barGap + 6;

const axis = [];
for (let e = -span; e <= span; e++) {
  const r = 2 ** e;
  const xx = x(r).toFixed(1);
  const label = r >= 1 ? `${r}x` : `1/${2 ** -e}x`;
  axis.push(
    `<line x1="${xx}" y1="${top - 6}" x2="${xx}" y2="${plotBottom}" class="${e === 0 ? 'one' : 'grid'}"/>`,
    `<text x="${xx}" y="${plotBottom + 16}" text-anchor="middle" class="tick">${label}</text>`,
  );
}

const legend = peers.map((p, i) => {
  const lx = plotX + i * 130;
  return (
    `<rect x="${lx}" y="44" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>` +
    `<text x="${lx + 18}" y="54" class="label">vs ${esc(p)}</text>`
  );
});

const H = plotBottom + 50;
const subtitle =
  `${data.quick ? 'quick run, ' : ''}N = ${Number(data.n).toLocaleString('en-US')} keys, ` +
  `median of ${data.rounds ?? 3} rounds; node ${data.node}, ${data.cpu}, ${data.platform}; ${data.date.slice(0, 10)}`;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">
<style>
  .title { font-size: 16px; font-weight: 600; fill: #222; }
  .sub { font-size: 11px; fill: #666; }
  .label { font-size: 12px; fill: #333; }
  .value { font-size: 10px; fill: #333; }
  .tick { font-size: 10px; fill: #666; }
  .grid { stroke: #e3e3e3; stroke-width: 1; }
  .one { stroke: #333; stroke-width: 1.5; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="22" class="title">${esc(base)} relative to each peer (log scale; &gt; 1x = ${esc(base)} better)</text>
<text x="16" y="38" class="sub">${esc(subtitle)}</text>
${legend.join('\n')}
${axis.join('\n')}
${parts.join('\n')}
<text x="16" y="${H - 12}" class="sub">Throughput: ${esc(base)} ops/s / peer ops/s. File size, peak RSS, cold open: peer / ${esc(base)}.</text>
</svg>
`;
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, svg);
console.log(
  `wrote ${path.relative(process.cwd(), outFile)} (${groups.length} workloads, baseline ${base})`,
);
