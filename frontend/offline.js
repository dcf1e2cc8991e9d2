// The teacher's forms on a phone with a weak signal (the visit record and the safety report).
//
// - As the teacher types, a copy of the form (fields and chosen photos) is kept in the browser's
//   IndexedDB, keyed by the page, and the page says so (「已在本机保存」). Reopening the page
//   restores it; a refused submit gets its photos chosen again from it.
// - Saving or submitting sends the form with fetch(). With no connection (or a request that never
//   reaches the server) the record stays queued on the phone with a banner, and is sent when the
//   connection returns or when any teacher page is next opened.
// - Each form carries the server's record key (the hidden input submission_key): a resend
//   of the same record is answered with the record already made, never a second one.
// - A successful save (the server redirects to the record) deletes the copy.
//
// Works without a service worker (WeChat / WeCom on iPhone run none): this copy is what keeps
// the work. Without JavaScript the forms post as plain HTML forms.
import { openDB } from "idb";

const STORE = "forms";
let dbPromise = null;

function db() {
  if (!dbPromise) {
    dbPromise = openDB("homevisit-offline", 1, {
      upgrade(database) {
        database.createObjectStore(STORE);
      },
    });
  }
  return dbPromise;
}

async function getCopy(page) {
  try {
    return await (await db()).get(STORE, page);
  } catch (error) {
    return undefined;
  }
}

async function putCopy(page, copy) {
  const database = await db();
  try {
    await database.put(STORE, copy, page);
    return true;
  } catch (error) {
    // Some browsers refuse to store files: keep the typed fields and say the photos are not kept.
    const withoutFiles = Object.assign({}, copy, { files: [], filesRefused: true });
    await database.put(STORE, withoutFiles, page);
    return false;
  }
}

async function deleteCopy(page) {
  try {
    await (await db()).delete(STORE, page);
  } catch (error) {
    /* nothing to delete */
  }
}

async function allCopies() {
  try {
    const database = await db();
    const keys = await database.getAllKeys(STORE);
    const values = await database.getAll(STORE);
    return keys.map((key, i) => [key, values[i]]);
  } catch (error) {
    return [];
  }
}

function pageKey() {
  return window.location.pathname + window.location.search;
}

function timeText(stamp) {
  const date = new Date(stamp);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// --- reading and restoring a form -------------------------------------------------------------

function readForm(form) {
  const fields = [];
  const files = [];
  for (const element of form.elements) {
    if (!element.name || element.disabled || element.name === "csrfmiddlewaretoken") continue;
    if (element.type === "file") {
      for (const file of element.files) files.push([element.name, file]);
    } else if (element.type === "checkbox" || element.type === "radio") {
      if (element.checked) fields.push([element.name, element.value]);
    } else if (element.type !== "submit" && element.type !== "button") {
      fields.push([element.name, element.value]);
    }
  }
  return { fields, files };
}

function restoreFields(form, fields) {
  const values = new Map();
  for (const [name, value] of fields) {
    if (!values.has(name)) values.set(name, []);
    values.get(name).push(value);
  }
  for (const element of form.elements) {
    if (!element.name || element.type === "file" || element.name === "csrfmiddlewaretoken") continue;
    if (element.type === "submit" || element.type === "button") continue;
    const saved = values.get(element.name);
    if (element.type === "checkbox" || element.type === "radio") {
      element.checked = Boolean(saved && saved.includes(element.value));
      if (element.checked) openParents(element);
    } else if (saved) {
      element.value = saved[0];
    }
  }
}

function openParents(element) {
  for (let node = element.parentElement; node; node = node.parentElement) {
    if (node.tagName === "DETAILS") node.open = true;
  }
}

function restoreFiles(form, files) {
  if (!files || !files.length || typeof DataTransfer === "undefined") return 0;
  const byName = new Map();
  for (const [name, file] of files) {
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name).push(file);
  }
  let restored = 0;
  for (const [name, list] of byName) {
    const input = form.querySelector(`input[type=file][name="${name}"]`);
    if (!input) continue;
    try {
      const transfer = new DataTransfer();
      list.forEach((file) => transfer.items.add(file));
      input.files = transfer.files;
      restored += list.length;
    } catch (error) {
      /* this browser cannot set a file input: the status line says to choose again */
    }
  }
  return restored;
}

function showFilesStatus(form, text) {
  const status = form.querySelector("[data-files-status]");
  if (status) status.textContent = text;
}

function showStatus(form, text) {
  const status = form.querySelector("[data-offline-status]");
  if (status) status.textContent = text;
}

function showBanner(text, tone) {
  const banner = document.querySelector("[data-offline-banner]");
  if (!banner) return;
  banner.querySelector("[data-offline-banner-text]").textContent = text;
  banner.classList.remove("alert-warning", "alert-success", "alert-danger");
  banner.classList.add(`alert-${tone || "warning"}`);
  banner.hidden = false;
}

// --- sending ------------------------------------------------------------------------------------

function formDataOf(copy) {
  const data = new FormData();
  data.append("csrfmiddlewaretoken", csrfToken());
  for (const [name, value] of copy.fields) data.append(name, value);
  for (const [name, file] of copy.files || []) data.append(name, file, file.name);
  if (copy.action) data.append("action", copy.action);
  return data;
}

// Sends a copy. Resolves to "sent" (the server made or already had the record and answered 204
// with its address in X-Record-Url), "refused" (the server answered with the form again: something must be corrected),
// "login" (the session ended), or "offline" (the request did not get through).
async function send(copy) {
  let response;
  try {
    response = await fetch(copy.url, {
      method: "POST",
      body: formDataOf(copy),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
    });
  } catch (error) {
    return { outcome: "offline" };
  }
  const recordUrl = response.headers.get("X-Record-Url");
  if (response.status === 204 && recordUrl) return { outcome: "sent", url: recordUrl };
  const landed = new URL(response.url, window.location.href);
  if (landed.pathname.startsWith("/accounts/login")) return { outcome: "login" };
  if (response.status >= 500) return { outcome: "offline" };
  return { outcome: "refused" };
}

let flushing = false;

// Sends every queued record of this browser (on any teacher page, and when the connection returns).
async function flushQueue() {
  if (flushing || navigator.onLine === false) return;
  flushing = true;
  try {
    for (const [page, copy] of await allCopies()) {
      if (!copy || !copy.queued) continue;
      const result = await send(copy);
      if (result.outcome === "sent") {
        await deleteCopy(page);
        if (page === pageKey()) {
          window.location.assign(result.url);
          return;
        }
        showBanner("离线保存的家访记录已经发送成功。", "success");
      } else if (result.outcome === "refused") {
        copy.queued = false;
        await putCopy(page, copy);
        showBanner("一条在本机保存的记录没能提交，需要补充后再提交：请打开「新建或修改家访记录」页面，内容已为您恢复。", "danger");
      } else if (result.outcome === "login") {
        showBanner("登录已过期：请重新登录，本机保存的记录会在登录后自动发送。", "warning");
        return;
      } else {
        return; // still offline: try again on the next 'online' event or page
      }
    }
  } finally {
    flushing = false;
  }
}

// --- the form page ------------------------------------------------------------------------------

function consentRule(form) {
  const marks = form.querySelectorAll("[data-consent-required]");
  if (!marks.length) return;
  const update = () => {
    const inHome = form.querySelector("input[name=method][value=in_home]");
    const special = [...form.querySelectorAll("input[name=students][data-special]")].some((box) => box.checked);
    const required = Boolean(inHome && inHome.checked && special);
    marks.forEach((mark) => {
      mark.hidden = !required;
    });
  };
  form.addEventListener("change", update);
  update();
}

function focusErrors() {
  const summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  // The refused page comes back at the same address: keep the browser from restoring the scroll
  // position of the page the teacher tapped 提交 on (the bottom of the form).
  if ("scrollRestoration" in history) history.scrollRestoration = "manual";
  const show = () => {
    summary.focus({ preventScroll: true });
    summary.scrollIntoView({ block: "start" });
  };
  show();
  window.addEventListener("load", () => requestAnimationFrame(show), { once: true });
}

async function setUpForm(form) {
  const page = pageKey();
  const url = form.getAttribute("action") || page;
  const keyInput = form.querySelector("input[name=submission_key]");
  const bound = form.dataset.bound === "1";
  let copy = await getCopy(page);

  if (copy) {
    if (bound) {
      // The server refused the submit and shows the typed fields again, but not the photos.
      const restored = restoreFiles(form, copy.files);
      if (restored) showFilesStatus(form, `已从本机重新选好 ${restored} 个照片或文件，提交时会一起上传。`);
      else if (copy.files && copy.files.length) showFilesStatus(form, "照片没有保存，请重新选择。");
    } else {
      restoreFields(form, copy.fields);
      const restored = restoreFiles(form, copy.files);
      if (keyInput && copy.key) keyInput.value = copy.key;
      let text = `已恢复 ${timeText(copy.savedAt)} 在本机保存的内容`;
      if (restored) text += `（含 ${restored} 个照片或文件）`;
      if (copy.filesRefused) text += "；照片没能保存在本机，请重新选择";
      showBanner(copy.queued ? `${text}。这条记录还没有发送：联网后会自动发送。` : `${text}。`, "warning");
    }
  }

  let timer = null;
  const save = async () => {
    const { fields, files } = readForm(form);
    copy = Object.assign(copy || {}, {
      url,
      fields,
      files,
      key: keyInput ? keyInput.value : "",
      savedAt: Date.now(),
      kind: form.dataset.offlineForm,
    });
    const kept = await putCopy(page, copy);
    showStatus(form, `已在本机保存 ${timeText(copy.savedAt)}${kept ? "" : "（照片未能保存在本机）"}`);
  };
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(save, 400);
  };
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);

  form.addEventListener("submit", async (event) => {
    if (form.dataset.nativeSubmit === "1") return; // the fallback below: let the browser post
    event.preventDefault();
    const submitter = event.submitter;
    const buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach((button) => {
      button.disabled = true;
    });
    clearTimeout(timer);
    await save();
    copy.action = submitter && submitter.name === "action" ? submitter.value : "";
    copy.queued = true;
    await putCopy(page, copy);
    const queuedText =
      "没有网络：这条记录已保存在本机，联网后会自动发送（再次打开本页面也会发送）。请不要清除浏览器数据。";
    if (navigator.onLine === false) {
      showBanner(queuedText, "warning");
      buttons.forEach((button) => {
        button.disabled = false;
      });
      window.scrollTo(0, 0);
      return;
    }
    const result = await send(copy);
    if (result.outcome === "sent") {
      await deleteCopy(page);
      window.location.assign(result.url);
      return;
    }
    buttons.forEach((button) => {
      button.disabled = false;
    });
    if (result.outcome === "offline") {
      showBanner(queuedText, "warning");
      window.scrollTo(0, 0);
    } else if (result.outcome === "login") {
      showBanner("登录已过期：请在新窗口重新登录，这条记录已保存在本机，登录后会自动发送。", "warning");
      window.scrollTo(0, 0);
    } else {
      // Refused: post the form as a plain form so the server shows what to correct; the copy
      // (not queued any more) chooses the photos again on that page.
      copy.queued = false;
      await putCopy(page, copy);
      form.dataset.nativeSubmit = "1";
      if (submitter && typeof form.requestSubmit === "function") form.requestSubmit(submitter);
      else form.submit();
    }
  });

  consentRule(form);
  focusErrors();
}

async function start() {
  // A record page names the key of the record it shows: the copy of that record is done with.
  const saved = document.querySelector("[data-saved-record-key]");
  if (saved) {
    for (const [page, copy] of await allCopies()) {
      if (copy && copy.key && copy.key === saved.dataset.savedRecordKey) await deleteCopy(page);
    }
  }
  const form = document.querySelector("form[data-offline-form]");
  if (form) await setUpForm(form);
  window.addEventListener("online", flushQueue);
  await flushQueue();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
