/**
 * api.js: the REST calls the web app makes, with the session cookie and the CSRF token.
 *
 * Errors come back as the API's one error shape ({code, message, details?}), thrown as an
 * `ApiError` so callers can show `error.message`.
 */

export class ApiError extends Error {
  constructor(status, data) {
    super(data?.message || `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.code = data?.code || String(status);
    this.details = data?.details;
  }
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

/** GET/POST/... a JSON endpoint of this origin. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * Upload `file` as an attachment of a message, reporting progress (0..1) as it goes.
 * XHR, not fetch: fetch has no upload progress. Resolves with the attachment.
 */
export function uploadAttachment(messageId, file, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/chat/messages/${encodeURIComponent(messageId)}/attachments`);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(xhr.response);
      } else reject(new ApiError(xhr.status, xhr.response));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "The upload failed: network error." }));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
