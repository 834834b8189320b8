/* tensorforge graph viewer: a fast layered layout for big graphs (export/html.py picks it past
 * DAGRE_MAX_NODES nodes, where dagre's long-edge handling takes tens of seconds).
 * Ranks by longest path from the sources, then each node as late as its consumers allow, a few
 * barycentre sweeps to order each rank, x from the neighbours' mean, and edges as curves (no
 * dummy nodes: a long edge may cross other nodes, the price of speed).
 * nodes: [{id, width, height}] in topological order; edges: [[from, to]].
 * Returns {nodes: {id: {x, y, width, height}}, edges: [{v, w, points}], width, height}. */
var tfLayers = (function () {
  "use strict";

  function ranks(nodes, preds, succs) {
    var rank = {};
    nodes.forEach(function (n) {
      var r = 0;
      preds[n.id].forEach(function (p) { r = Math.max(r, rank[p] + 1); });
      rank[n.id] = r;
    });
    // then as late as the consumers allow (in reverse order, so a whole chain moves down): a leaf
    // or an optimizer op that could run at the start sits just above its first consumer
    nodes.slice().reverse().forEach(function (n) {
      if (!succs[n.id].length) return;
      var first = Infinity;
      succs[n.id].forEach(function (s) { first = Math.min(first, rank[s]); });
      rank[n.id] = Math.max(rank[n.id], first - 1);
    });
    return rank;
  }

  function orderRanks(rows, preds, succs, sweeps) {
    var pos = {};
    function index() { rows.forEach(function (row) { row.forEach(function (id, i) { pos[id] = i; }); }); }
    function mean(ids, fallback) {
      if (!ids.length) return fallback;
      var s = 0;
      ids.forEach(function (id) { s += pos[id]; });
      return s / ids.length;
    }
    index();
    for (var sweep = 0; sweep < sweeps; sweep++) {
      var down = sweep % 2 === 0;
      var list = down ? rows : rows.slice().reverse();
      list.forEach(function (row) {
        var key = {};
        row.forEach(function (id) { key[id] = mean(down ? preds[id] : succs[id], pos[id]); });
        row.sort(function (a, b) { return key[a] - key[b] || pos[a] - pos[b]; });
        row.forEach(function (id, i) { pos[id] = i; });
      });
    }
  }

  function placeX(rows, box, preds, succs, sep) {
    var x = {};
    function centre(ids) {
      var placed = ids.filter(function (id) { return x[id] !== undefined; });
      if (!placed.length) return null;
      var s = 0;
      placed.forEach(function (id) { s += x[id]; });
      return s / placed.length;
    }
    rows.forEach(function (row) {
      var right = -Infinity, shift = 0, wanted = 0, count = 0;
      row.forEach(function (id) {
        var want = centre(preds[id].concat(succs[id]));
        var half = box[id].width / 2;
        var at = Math.max(want === null ? right + sep + half : want, right + sep + half);
        if (right === -Infinity) at = want === null ? half : want;
        x[id] = at;
        right = at + half;
        if (want !== null) { wanted += want - at; count++; }
      });
      shift = count ? wanted / count : 0;       // pull the packed row back under its neighbours
      row.forEach(function (id) { x[id] += shift; });
    });
    return x;
  }

  function layout(nodes, edges, opts) {
    var sep = opts.nodesep, rankSep = opts.ranksep, margin = opts.margin;
    var preds = {}, succs = {}, box = {};
    nodes.forEach(function (n) { preds[n.id] = []; succs[n.id] = []; box[n.id] = n; });
    edges.forEach(function (e) { succs[e[0]].push(e[1]); preds[e[1]].push(e[0]); });
    var rank = ranks(nodes, preds, succs);
    var rows = [];
    nodes.forEach(function (n) { (rows[rank[n.id]] = rows[rank[n.id]] || []).push(n.id); });
    rows = rows.filter(function (row) { return row && row.length; });
    orderRanks(rows, preds, succs, 4);
    var x = placeX(rows, box, preds, succs, sep);
    var minX = Infinity, maxX = -Infinity;
    Object.keys(x).forEach(function (id) {
      minX = Math.min(minX, x[id] - box[id].width / 2);
      maxX = Math.max(maxX, x[id] + box[id].width / 2);
    });
    var out = { nodes: {}, edges: [], width: 0, height: 0 }, y = margin;
    rows.forEach(function (row) {
      var tall = 0;
      row.forEach(function (id) { tall = Math.max(tall, box[id].height); });
      row.forEach(function (id) {
        out.nodes[id] = { x: x[id] - minX + margin, y: y + tall / 2, width: box[id].width, height: box[id].height };
      });
      y += tall + rankSep;
    });
    edges.forEach(function (e) {
      var a = out.nodes[e[0]], b = out.nodes[e[1]];
      var y0 = a.y + a.height / 2, y1 = b.y - b.height / 2, bend = Math.max(20, (y1 - y0) / 2);
      out.edges.push({ v: e[0], w: e[1], points: [{ x: a.x, y: y0 }, { x: a.x, y: y0 + bend },
        { x: b.x, y: y1 - bend }, { x: b.x, y: y1 }], curve: true });
    });
    out.width = maxX - minX + 2 * margin;
    out.height = y - rankSep + margin;
    return out;
  }

  return { layout: layout };
})();
