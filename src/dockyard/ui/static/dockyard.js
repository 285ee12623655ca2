// Dockyard's only script: copy buttons and upload progress. Every page works without it.
"use strict";

function copyText(button) {
  const text = button.dataset.copy || "";
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
    // The button's name stays "Copy …" (its aria-label): a live region tells screen reader users it worked.
    const announce = document.getElementById("announce");
    if (announce) {
      announce.textContent = (button.getAttribute("aria-label") || "Copy").replace(/^Copy/, "Copied");
    }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try {
    document.execCommand("copy");
    done();
  } finally {
    area.remove();
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (button) {
    copyText(button);
  }
});

// Forms marked data-upload-progress="ID" upload with XMLHttpRequest so the block ID can show how much of the
// file has gone; the answer (the page the plain form would have shown) then replaces this one.
function showProgress(box, percent, text) {
  box.hidden = false;
  box.querySelector("progress").value = percent;
  box.querySelector(".upload-status").textContent = text;
}

function uploadWithProgress(form, box) {
  const request = new XMLHttpRequest();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showProgress(box, 0, "Uploading: 0%");
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable && event.total > 0) {
      const percent = Math.floor((event.loaded / event.total) * 100);
      showProgress(box, percent, `Uploading: ${percent}%`);
    }
  });
  request.upload.addEventListener("load", () => showProgress(box, 100, "Uploaded; importing…"));
  request.addEventListener("load", () => {
    const answer = new DOMParser().parseFromString(request.responseText, "text/html");
    document.title = answer.title;
    document.body.replaceWith(document.adoptNode(answer.body));
    const again = document.getElementById(box.id);
    if (again) {
      showProgress(again, 100, `Upload complete (${request.status === 200 ? "imported" : "refused"}).`);
    }
  });
  request.addEventListener("error", () => {
    button.disabled = false;
    showProgress(box, 0, "The upload failed: check the connection and try again.");
  });
  request.open(form.method, form.action);
  request.send(new FormData(form));
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  const box = form.dataset && form.dataset.uploadProgress ? document.getElementById(form.dataset.uploadProgress) : null;
  if (box && window.XMLHttpRequest && window.FormData && window.DOMParser) {
    event.preventDefault();
    uploadWithProgress(form, box);
  }
});
