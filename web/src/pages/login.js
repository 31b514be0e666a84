// Log in: a wrong password and other failures are said plainly, above the form.
import { ApiError, login } from "../api.js";
import { field, h } from "../dom.js";
import { flash, navigate } from "../main.js";

export function renderLogin(main) {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password",
                                autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert", id: "login-error" });
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h("form", { class: "card login", "aria-describedby": "login-error" },
    h("h1", {}, "Log in to Telemetra"), error,
    field("Username or email", username), field("Password", password), submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      await login(username.value.trim(), password.value);
      flash("");
      const next = new URLSearchParams(location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/devices",
               { replace: true });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        error.textContent = "Wrong username or password. Check both and try again.";
      } else if (e instanceof ApiError && e.status === 429) {
        error.textContent = "Too many attempts. Wait a minute, then try again.";
      } else if (e instanceof ApiError) {
        error.textContent = `Could not log in: ${e.message}`;
      } else {
        error.textContent = "The server cannot be reached. Is Telemetra running?";
      }
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h("div", { class: "center" }, form));
  username.focus();
}
