// Templates are precompiled when the code is built, for the bundle (esbuild) and for the
// tests (vite) alike: `import t from "…/x.hbs"` gives a template function, and at run
// time only Handlebars' small runtime is loaded (no template parser, no compiler).
import Handlebars from "handlebars";
import { readFile } from "node:fs/promises";

/** The one set of compile options (strict: a missing field throws instead of printing nothing). */
const TEMPLATE_OPTIONS = { strict: true, noEscape: true, knownHelpersOnly: true, knownHelpers: { each: true, if: true } };

/** A .hbs file as an ES module whose default export is the precompiled template spec. */
export async function templateModule(path) {
  const spec = Handlebars.precompile(await readFile(path, "utf8"), TEMPLATE_OPTIONS);
  return `export default ${spec};\n`;
}

export const esbuildHandlebars = {
  name: "handlebars",
  setup(b) {
    b.onLoad({ filter: /\.hbs$/ }, async (args) => ({ contents: await templateModule(args.path), loader: "js" }));
  },
};

export const viteHandlebars = {
  name: "handlebars",
  async load(id) {
    if (id.endsWith(".hbs")) return templateModule(id);
  },
};
