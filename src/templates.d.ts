// Templates are precompiled at build time (scripts/handlebars-plugin.mjs).
declare module "*.hbs" {
  import type { TemplateSpecification } from "handlebars";
  const spec: TemplateSpecification;
  export default spec;
}
