// Runs the spec editor's YAML edits (service/ui/assets/editor.js) under node with a
// minimal DOM: reads [{text, add?, message?}] as JSON on stdin, writes the results.
const node = () => ({ append() {}, setAttribute() {}, addEventListener() {},
  removeAttribute() {}, replaceChildren() {}, classList: { add() {}, remove() {} },
  querySelector() { return node(); }, dataset: {} });
globalThis.document = { createElement: node, createTextNode: (t) => t };
globalThis.Node = class {};
const { SpecEditor } = await import(process.argv[2]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ text, add, message }) => {
  const editor = new SpecEditor({ id: "spec", label: "spec", value: text });
  if (add) return { result: editor.addDependency(add), text: editor.value };
  return { lines: editor.linesNamed(message) };
});
process.stdout.write(JSON.stringify(out));
