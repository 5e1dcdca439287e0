// Templates only lay out a view model that TypeScript has already decided. They are
// precompiled when dockwall is built (scripts/handlebars-plugin.mjs: strict, so a missing
// field throws instead of printing nothing; no HTML escaping; no helpers beyond the
// built-ins), so only Handlebars' runtime is loaded here.
import Handlebars from "handlebars/runtime";
import ferm from "../../templates/ferm/ferm.hbs";
import iptables from "../../templates/iptables/restore.hbs";
import nft from "../../templates/nft/table.hbs";

const hb = Handlebars.create();

export const templates = {
  ferm: hb.template<unknown>(ferm),
  iptables: hb.template<unknown>(iptables),
  nft: hb.template<unknown>(nft),
};
