// A restore tool's error, said in one line: the tool's reason, not its banner alone (a review:
// "ip6tables-nft-restore v1.8.9 (nf_tables): " was all apply said when a chain it deletes was still
// in use by another tool's jump; the reason is on the next line).
import { expect, test } from "vitest";
import { firstLine } from "../../src/apply/deploy.js";

test("the banner and the reason on the line after it: one line", () => {
  const e = new Error("Command failed: ip6tables-nft-restore\nip6tables-nft-restore v1.8.9 (nf_tables): \nline 5: CHAIN_DEL failed (Device or resource busy): chain DOCKWALL-PROXY\n");
  expect(firstLine(e)).toBe("ip6tables-nft-restore v1.8.9 (nf_tables): line 5: CHAIN_DEL failed (Device or resource busy): chain DOCKWALL-PROXY");
});

test("a reason on the banner's own line stays as it is", () => {
  const e = new Error("iptables-restore v1.8.9 (nf_tables): unknown option \"--foo\"\nError occurred at line: 7\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n");
  expect(firstLine(e)).toBe('iptables-restore v1.8.9 (nf_tables): unknown option "--foo"');
});
