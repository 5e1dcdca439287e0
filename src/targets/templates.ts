// One isolated, strict Handlebars instance: no HTML escaping, no helpers beyond the
// built-ins, and a missing field throws instead of printing nothing. Templates only
// lay out a view model that TypeScript has already decided.
import Handlebars from "handlebars";
import ferm from "../../templates/ferm/ferm.hbs?raw";
import iptables from "../../templates/iptables/restore.hbs?raw";

const hb = Handlebars.create();
const options = { strict: true, noEscape: true, knownHelpersOnly: true, knownHelpers: { each: true, if: true } } as const;

export const templates = {
  ferm: hb.compile<unknown>(ferm, options),
  iptables: hb.compile<unknown>(iptables, options),
};
