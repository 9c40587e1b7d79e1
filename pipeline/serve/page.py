"""The one page `capcache serve` shows: pick or drop photos (or paste a URL), choose a run or all of
them, and see per photo each run's caption, the beam's n-best with scores and the word-by-word
attention overlays. Plain HTML and JavaScript, no build step and nothing fetched from the web."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>capcache serve</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
#drop{border:2px dashed #999;border-radius:8px;padding:2em;text-align:center;color:#555}
#drop.over{background:#eef6ff;border-color:#06c}
.row{margin:.6em 0}.result{display:flex;gap:16px;border:1px solid #ddd;border-radius:6px;padding:10px;margin:10px 0}
.result img.photo{width:240px;height:auto;object-fit:contain}.run{margin-bottom:10px}
.caption{font-size:120%;font-weight:600}.nbest{color:#555;font-size:90%;margin:4px 0}
.overlays{display:flex;flex-wrap:wrap;gap:4px}.overlays figure{margin:0;text-align:center;font-size:80%}
.overlays img{width:96px}.error{color:#b00}.runname{color:#06c;font-size:85%}
</style></head><body>
<h1>capcache: caption your photos</h1>
<div class="row"><label>run <select id="run"></select></label>
<span id="status"></span></div>
<div id="drop">drop photos here, or <input type="file" id="files" accept="image/*" multiple></div>
<div class="row" id="urlrow" hidden><input id="url" size="60" placeholder="https://... (fetched by the server)">
<button id="fetch">caption URL</button></div>
<div id="results"></div>
<script>
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
fetch('/runs').then(r => r.json()).then(info => {
  for (const run of info.runs) $('run').add(new Option(`${run.name} (${run.decoder} on ${run.encoder})`, run.name));
  if (info.runs.length > 1) $('run').add(new Option('all runs, side by side', 'all'));
  $('urlrow').hidden = !info.allow_urls;
  document.body.dataset.ready = '1';
});
function show(results, previews) {
  for (const [i, r] of results.entries()) {
    const card = document.createElement('div');
    card.className = 'result';
    const photo = previews[i] ? `<img class="photo" alt="${esc(r.name)}" src="${previews[i]}">` : '';
    if (!r.ok) { card.innerHTML = `${photo}<div><b>${esc(r.name)}</b><div class="error">${esc(r.error)}</div></div>`; }
    else {
      card.innerHTML = photo + '<div>' + `<b>${esc(r.name)}</b>` + r.captions.map(c =>
        `<div class="run"><div class="runname">${esc(c.run)}</div><div class="caption">${esc(c.caption)}</div>` +
        `<ol class="nbest">${c.nbest.map(n => `<li>${esc(n.caption)} <small>(log p ${n.log_prob.toFixed(2)})</small></li>`).join('')}</ol>` +
        `<div class="overlays">${c.attention.map(a => `<figure><img class="overlay" alt="${esc(a.word)}" ` +
        `src="data:image/png;base64,${a.png}"><figcaption>${esc(a.word)}</figcaption></figure>`).join('')}</div></div>`).join('') + '</div>';
    }
    $('results').prepend(card);
  }
}
async function send(body, previews) {
  $('status').textContent = 'captioning...';
  try {
    const answer = await fetch('/caption', {method: 'POST', body});
    const data = await answer.json();
    if (data.results) show(data.results, previews); else show([{name: 'request', ok: false, error: data.error}], []);
    $('status').textContent = '';
  } catch (e) { $('status').textContent = 'error: ' + e; }
  document.body.dataset.answered = String(Number(document.body.dataset.answered || 0) + 1);
}
function upload(files) {
  const body = new FormData();
  body.append('run', $('run').value);
  const previews = [];
  for (const f of files) { body.append('image', f, f.name); previews.push(URL.createObjectURL(f)); }
  if (files.length) send(body, previews);
}
$('files').addEventListener('change', e => upload([...e.target.files]));
$('drop').addEventListener('dragover', e => { e.preventDefault(); $('drop').classList.add('over'); });
$('drop').addEventListener('dragleave', () => $('drop').classList.remove('over'));
$('drop').addEventListener('drop', e => { e.preventDefault(); $('drop').classList.remove('over'); upload([...e.dataTransfer.files]); });
$('fetch').addEventListener('click', () => {
  const body = new FormData(); body.append('run', $('run').value); body.append('url', $('url').value); send(body, []);
});
</script></body></html>
"""
