// A form generated from a workflow's inputs schema ({name: {type, default, description}}):
// a text box, a number box or a checkbox per scalar input, a JSON text area for arrays and objects.

import { h } from "../dom.js";

function field(name, schema) {
  const id = `input-${name}`;
  const type = schema.type || "string";
  const hint = schema.description ? h("small", { id: `${id}-hint` }, schema.description) : null;
  const described = hint ? `${id}-hint` : undefined;
  let control;
  if (type === "boolean") {
    control = h("input", { id, type: "checkbox", checked: schema.default === true, "aria-describedby": described });
  } else if (type === "integer" || type === "number") {
    control = h("input", { id, type: "number", step: type === "integer" ? 1 : "any", value: schema.default ?? "", "aria-describedby": described });
  } else if (type === "array" || type === "object") {
    const initial = schema.default === undefined ? "" : JSON.stringify(schema.default, null, 2);
    control = h("textarea", { id, rows: Math.min(12, initial.split("\n").length + 1), spellcheck: false, "aria-describedby": described }, initial);
  } else {
    control = h("input", { id, type: "text", value: schema.default ?? "", size: 48, "aria-describedby": described });
  }
  const read = () => {
    if (type === "boolean") return control.checked;
    const raw = control.value.trim();
    if (raw === "") return undefined;
    if (type === "integer" || type === "number") return Number(raw);
    if (type === "array" || type === "object") {
      try {
        return JSON.parse(raw);
      } catch (error) {
        throw new Error(`${name}: not valid JSON (${error.message})`);
      }
    }
    return raw;
  };
  const label = h("label", { for: id }, name, h("span", { class: "muted" }, ` (${type})`));
  return { element: h("div", { class: "field" }, label, control, hint), read, name };
}

/** The form; onSubmit(inputs) with the values read, or an Error for one that does not parse. */
export function inputsForm(inputs, onSubmit) {
  const fields = Object.entries(inputs || {}).map(([name, schema]) => field(name, schema || {}));
  const form = h(
    "form",
    { class: "inputs", id: "start-run" },
    fields.length ? fields.map((f) => f.element) : h("p", { class: "muted" }, "This workflow takes no inputs."),
    h("button", { type: "submit", class: "primary" }, "Start run"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      const values = {};
      for (const f of fields) {
        const value = f.read();
        if (value !== undefined) values[f.name] = value;
      }
      onSubmit(values);
    } catch (error) {
      onSubmit(error);
    }
  });
  return form;
}
