// Follows a running task's live log: the server sends already-escaped, numbered HTML lines, one
// per line, as the worker writes them; they are appended without reloading the page.
"use strict";
(function () {
  const log = document.getElementById("log");
  const status = document.getElementById("follow-status");
  if (!log || !log.dataset.follow || !window.fetch || !window.TextDecoder) {
    return;
  }
  const nearBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  const say = (text) => { if (status) { status.textContent = text; } };
  const append = (html) => {
    const follow = nearBottom();
    log.insertAdjacentHTML("beforeend", html);
    const wanted = window.location.hash.slice(1);
    if (wanted && document.getElementById(wanted) && !log.dataset.jumped) {
      log.dataset.jumped = "1";
      document.getElementById(wanted).scrollIntoView();
    } else if (follow) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  };
  async function run() {
    const response = await fetch(log.dataset.follow);
    if (!response.ok || !response.body) {
      say("The live log is not available any more: reload for the stored log.");
      return;
    }
    log.textContent = "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) { break; }
      pending += decoder.decode(value, { stream: true });
      const cut = pending.lastIndexOf("\n");
      if (cut >= 0) {
        append(pending.slice(0, cut + 1));
        pending = pending.slice(cut + 1);
      }
    }
    if (pending) { append(pending); }
    log.dataset.ended = "1";
    say("The task's log is complete (reload for the stored copy).");
  }
  run().catch(() => say("Following the live log failed: reload to try again."));
})();
