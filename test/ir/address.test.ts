// The one address library (src/ir/address.ts): what tools print read as values, and written back
// in one spelling. Every module that reads an address (the save reader, the evaluators, the nft
// writer, the lockout guard, DNAT targets) goes through it.
import { describe, expect, test } from "vitest";
import { canonicalAddress, formatIp, prefixOfMask, readIp, unmapped } from "../../src/ir/address.js";

describe("readIp: an address as a tool prints it", () => {
  test.each([
    ["192.168.1.2", 4, 0xc0a80102n],
    ["0.0.0.0", 4, 0n],
    ["255.255.255.255", 4, 0xffffffffn],
    ["2001:db8::1", 6, 0x20010db8000000000000000000000001n],
    ["::", 6, 0n],
    ["::ffff:10.1.2.3", 6, 0xffff0a010203n],
  ])("%s", (text, family, value) => {
    expect(readIp(text)).toEqual({ family, value });
  });
  test.each(["1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4/32", "fe80::1%eth0", "2001:db8::g", "", "*", "localhost"])("not an address: %j", (text) => {
    expect(readIp(text)).toBeUndefined();
  });
  test("written back as iptables-save and nft print it (IPv6 shortest)", () => {
    for (const t of ["10.0.0.1", "2001:db8::1", "fe80::a:b", "::1", "::"]) expect(formatIp(readIp(t)!)).toBe(t);
    expect(formatIp(readIp("2001:0db8:0000:0000:0000:0000:0000:0001")!)).toBe("2001:db8::1");
  });
});

test("unmapped: an IPv4-mapped IPv6 address is the IPv4 address it maps (ss and sshd print them so)", () => {
  expect(formatIp(unmapped(readIp("::ffff:192.0.2.7")!))).toBe("192.0.2.7");
  expect(unmapped(readIp("2001:db8::1")!)).toEqual(readIp("2001:db8::1"));
  expect(unmapped(readIp("10.0.0.1")!)).toEqual(readIp("10.0.0.1"));
});

test("prefixOfMask: a netmask's prefix length, none for one that is not contiguous", () => {
  expect(prefixOfMask(readIp("255.255.255.0")!)).toBe(24);
  expect(prefixOfMask(readIp("255.255.255.255")!)).toBe(32);
  expect(prefixOfMask(readIp("0.0.0.0")!)).toBe(0);
  expect(prefixOfMask(readIp("255.128.0.0")!)).toBe(9);
  expect(prefixOfMask(readIp("255.0.255.0")!)).toBeUndefined();
  expect(prefixOfMask(readIp("ffff:ffff::")!)).toBe(32);
});

test("canonicalAddress: one spelling of an address or network, whichever way it was written", () => {
  expect(canonicalAddress("10.1.2.3/8")).toBe("10.0.0.0/8");
  expect(canonicalAddress("10.1.2.3")).toBe("10.1.2.3/32");
  expect(canonicalAddress("10.1.2.3/255.255.0.0")).toBe("10.1.0.0/16");
  expect(canonicalAddress("10.0.0.0/255.0.255.0")).toBe("10.0.0.0/255.0.255.0");
  expect(canonicalAddress("2001:db8::1:2/64")).toBe("2001:db8::/64");
  expect(canonicalAddress("2001:0db8::1")).toBe("2001:db8::1/128");
  expect(canonicalAddress("0.0.0.0/0")).toBe("0.0.0.0/0");
  // Not an address (a short form iptables-save never prints, a zone): as written.
  expect(canonicalAddress("1.2.3")).toBe("1.2.3");
  expect(canonicalAddress("fe80::1%eth0")).toBe("fe80::1%eth0");
});
