// `dockwall watch`: a level-triggered reconciler, as Kubernetes controllers are. A Docker
// event only marks the state dirty; one reconcile reads all of Docker's facts, compiles the
// policy with them, compares with what the kernel has and rewrites only the chains that
// differ (reconcile.ts). Start-up, SIGHUP, a reconnect and every event go through that one
// reconcile, so a lost, doubled or reordered event changes nothing, a burst of events
// (compose starting twenty containers) is one reconcile, and a restarted watcher simply
// catches up. On any doubt (no facts, a policy with errors, a refused load) the rules in
// place stay: the watcher never flushes to open. An error that only Docker's facts cause (a
// redeployed container no longer publishes the port an allow names) costs only what it
// concerns: that allow target is left out (it admits nothing), logged, and the rest applied.
import { compile, type CompileResult } from "../compile.js";
import { FactsMemo } from "../facts/read.js";
import { FactsReadYielded } from "../facts/engine.js";
import { SessionFailed, sessionLine } from "../live/nftsession.js";
import { formatDiagnostics } from "../diagnostics.js";
import type { RawFacts } from "../facts/read.js";
import { newKeyGeneration, parseSave, toRuleset, type SavedRuleset } from "../live/save.js";
import { lockout } from "../apply/guard.js";
import { inputOf, strandedInput, strandedMessage, type InputDrop } from "../apply/merge.js";
import type { Packet } from "../analysis/evaluate.js";
import type { Ruleset } from "../ir/ruleset.js";
import { NEWEST } from "../docker/layouts.js";
import { bootFacts } from "./boot.js";
import { bridgePorts, containerLinkChange, parseLinkLine } from "./links.js";
import { describeChanges, reconcileStep } from "./reconcile.js";
import { deploy, firstLine } from "../apply/deploy.js";
import { afterDelta, diffNft, learnHandles, nftDelta, parseNftList, unknownHandles, type NftState } from "../live/nftdiff.js";

export type Facts = { raw: RawFacts; source: string };

/**
 * A daemon that runs nothing: a policy checked with these facts reports only errors of its own
 * (the names it allows need not run yet; `version auto` gets the newest release).
 */
export const NO_FACTS: Facts = { raw: { networks: [], containers: [], version: { Version: NEWEST.text } }, source: "(no facts yet)" };

export interface WatchDeps {
  policyName: string;
  readPolicy: () => string;
  /** `signal`: this read may give way to an event (rejects with FactsReadYielded once it aborts). */
  facts: (signal?: AbortSignal) => Promise<Facts>;
  /**
   * The facts without listing every container: what the last read found, with the containers
   * events named since (forget(id)) inspected again. A reconcile for Docker's events uses it (a
   * new container's rules wait for one inspection, not for the whole list), and a full read
   * (facts) follows once the events pause, or within FULL_FACTS_EVERY_MS while they do not: an
   * event dockerd dropped costs at most that long.
   */
  changedFacts?: () => Promise<Facts>;
  /** The facts client may keep what it read between reconciles: an event about a container, or a reconnect, makes it read that again. */
  forget?: (id?: string) => void;
  /**
   * A network `connect` event for this container: it may be starting, and the facts client then
   * gives it as running as soon as its endpoints have their addresses (facts/starting.ts), so
   * that its rules are in place before its process runs.
   */
  connected?: (id: string) => void;
  /** Why the last facts left out containers that are starting (by id): said with --verbose. */
  notYet?: () => ReadonlyMap<string, string>;
  /** Follows the daemon's events; `done` resolves when the stream ends, rejects when it cannot be had. */
  events: (onEvent: (e: Record<string, unknown>) => void, onOpen: () => void) => { done: Promise<void>; close: () => void };
  /** iptables-save / ip6tables-save (a promise: it runs while the facts are read). */
  save: (family: 4 | 6) => string | Promise<string>;
  /** iptables-restore [--noflush] / ip6tables-restore; throws with the tool's message. */
  restore: (family: 4 | 6, text: string, noflush: boolean) => void;
  log: (line: string) => void;
  sleep: (ms: number) => Promise<void>;
  verbose: boolean;
  /** Quiet time after an event before the reconcile (a burst is one reconcile). */
  debounceMs: number;
  /** Keeps the host's saved ruleset (ferm.conf, rules.v4/.v6) in step: after the first reconcile and after each change. */
  persist?: (policyText: string, facts: Facts) => void;
  /** The policy it keeps changed (a SIGHUP's, taken): said where `dockwall rollback` reads it (watch.json). */
  kept?: (policyText: string) => void;
  /**
   * An apply that is loading its rules now (what to say of it): between its load and what it
   * writes after (that it waits for confirmation, or its SIGHUP to this watcher), a reconcile
   * would put back what it just loaded. The watcher waits for it (apply/command.ts applyingNow).
   */
  applying?: () => string | undefined;
  /** An apply that waits for confirmation (what to say of it), during which nothing is loaded. */
  pending?: () => string | undefined;
  /**
   * The policy the waiting apply loaded (its text, and `nft` for apply -f nft): while it waits,
   * the watcher keeps that policy's rules in step with Docker, so that a container removed
   * meanwhile leaves no rule behind for the next one given its address.
   */
  applied?: () => { text: string; format?: "nft" } | undefined;
  /**
   * The SSH sessions open now, each as the packet that would open its next connection (or why
   * they cannot be told): a policy read again on SIGHUP is not used if it would refuse one.
   */
  sessions?: () => Packet[] | string;
  /**
   * Changes to the kernel's tables as they happen (xtables-monitor on nf_tables hosts): each that
   * touches what dockwall owns (not only other tools' own chains) makes the state dirty, so that
   * drift is put back without waiting for a Docker event. `done` ends with the monitor.
   */
  kernelEvents?: (onChange: (what: string) => void) => { done: Promise<void>; close: () => void };
  /**
   * watch -f nft: what is loaded is the --format nft file, one `nft -f` transaction that replaces
   * its tables (dockwall's, and with `iptables off` Docker's), compared with what nft lists of
   * them (live/nftdiff.ts); save and restore are then not used.
   */
  nft?: {
    /** `nft -a list table` of each (with handles, for loading only what differs; a table not there: nothing); rejects when nft fails. */
    list: (tables: string[]) => Promise<string>;
    /** `nft -f` (with echo: `nft --echo --handle -f`, and what it printed is returned); throws with nft's message (then nothing changed: one transaction). */
    load: (text: string, echo?: boolean) => string | void;
    /**
     * `nft -a list chain` of each chain (`FAMILY TABLE/CHAIN`), joined; rejects when nft fails.
     * With it, a delta is loaded without echo (an echo makes nft read the whole ruleset) and the
     * handles of the rules it added are learnt from their chains alone, after the load.
     */
    listChains?: (chains: string[]) => Promise<string>;
    /**
     * A delta (without echo) through one `nft -i` kept running (live/nftsession.ts): the same
     * transaction as load's, without a process per load nor the wait at its end for the kernel
     * to free a deleted rule. Rejects with nft's error, or when the session failed; the whole
     * file is then loaded with load.
     */
    loadDelta?: (text: string) => Promise<string>;
    /** Since when (performance.now()) nft monitor has reported every change to these tables without a break; undefined while it does not. */
    watchedSince?: () => number | undefined;
    /** Keeps the file for boot (--save-nft): the policy compiled with no container running. */
    persist?: (file: string) => void;
  };
  /**
   * The links of the host (`ip -o monitor link`, a line at a time, and `ip -o link show`): while
   * dockerd cannot be asked, a port that leaves one of Docker's bridges or joins one makes the
   * watcher take the rules to the containers' addresses out until it can (watch/links.ts).
   */
  links?: {
    follow: (onLine: (line: string) => void) => { done: Promise<void>; close: () => void };
    list: () => Promise<string>;
  };
  /** A full check every so many ms whatever happens (the backstop where the kernel tells nothing: iptables-legacy). */
  recheckMs?: number;
  /** A failed reconcile is tried again after this many ms, doubling up to a minute, instead of waiting for the next event. */
  retryMs?: number;
}

/** The events that can change Docker's facts (live.md): anything else is not worth a reconcile. */
const RELEVANT: Record<string, string[]> = {
  container: ["start", "die", "stop", "destroy", "kill", "restart", "create", "rename", "update", "pause", "unpause"],
  network: ["create", "destroy", "connect", "disconnect", "remove"],
};

/** How often a watcher looks whether an apply that is loading its rules is done. */
const APPLYING_POLL_MS = 50;

/** The longest wait between tries to reach the daemon's event stream again. */
export const EVENTS_RETRY_MAX_MS = 1000;
/** How long the events must pause before the quick reads since the last full one are followed by a full read. */
export const FACTS_SETTLE_MS = 250;
/** While events keep coming, a full read of Docker's facts at least this often (after a quick reconcile, not before it). */
export const FULL_FACTS_EVERY_MS = 2_000;

export interface ReconcileResult {
  changed: boolean;
  error?: string;
}

export class Watcher {
  private policyText: string;
  private dirty = false;
  private stopped = false;
  private wake?: () => void;
  private containers = new Set<string>();
  private stream?: { close: () => void };
  /** Reconciles done, and those that changed the kernel (for tests and the benchmark). */
  readonly stats = { reconciles: 0, changes: 0, events: 0 };

  constructor(
    private readonly deps: WatchDeps,
    policyText: string,
  ) {
    this.policyText = policyText;
  }

  /** When the state was last marked dirty (performance.now()), and how long it had been quiet before the first mark since the last reconcile began. */
  private lastMark = -Infinity;
  private quietBefore = Infinity;
  /** When the first event the next reconcile is for came (--verbose says how long it waited), and the reconcile under way's. */
  private firstMark?: number;
  private eventAt?: number;
  /** When the reconcile under way began to read Docker's facts. */
  private readBegan = 0;
  /** The read in full after the events (not overdue) may give way to an event; the one under way, if so. */
  private fullMayYield = false;
  private yieldRead?: AbortController;

  /**
   * Marks the state dirty: the next reconcile runs at once if it had been quiet for the quiet
   * time before (the first event of a burst), else after the quiet time (the rest of the burst
   * is folded into one). `timed` false: not an event, and not counted as one (the full read
   * that follows quick ones).
   */
  markDirty(why: string, timed = true): void {
    if (this.deps.verbose) this.deps.log(`dirty: ${why}`);
    if (timed) {
      // A read in full under way after the events gives way: this event's reconcile waits for nothing.
      this.yieldRead?.abort();
      const now = performance.now();
      if (!this.dirty) {
        this.quietBefore = now - this.lastMark;
        this.firstMark = now;
      }
      this.lastMark = now;
    }
    this.dirty = true;
    this.wake?.();
  }

  /** What changed in the kernel since the last reconcile (said when the reconcile puts something back). */
  private drift: string[] = [];

  /** The tables changed under dockwall (kernelEvents): reconcile, and say what changed if that puts anything back. */
  kernelChanged(what: string): void {
    // What the last load left is no longer known (-f nft): the tables are read again, whatever the next reconcile meets first.
    this.nftState = undefined;
    this.drift.push(what);
    this.markDirty(`the tables changed: ${what}`);
    // Not at once, as the first Docker event of a burst is: an apply loads its rules before it writes that it waits for
    // confirmation (pending.json), and the quiet time lets that land before this reconcile would put them back.
    this.quietBefore = 0;
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    this.kernelStream?.close();
    this.linkStream?.close();
    // (A read that may give way does: a stop is not kept waiting for a daemon that does not answer.)
    this.yieldRead?.abort();
    this.wake?.();
  }

  /** A policy read again on SIGHUP, used from the next reconcile if the lockout guard lets it. */
  private candidate?: string;
  /** What was said of a pending apply (said once while it waits). */
  private waitingFor?: string;
  /** While an apply waits for confirmation: the policy it loaded, which this reconcile keeps in step with Docker. */
  private whilePending?: string;

  /** SIGHUP: read the policy again; one with errors is logged and not used. */
  reload(): void {
    let text: string;
    try {
      text = this.deps.readPolicy();
    } catch (e) {
      this.deps.log(`SIGHUP: cannot read ${this.deps.policyName}: ${(e as Error).message}; the rules in place stay`);
      return;
    }
    const r = compile(text, { checkOnly: true, facts: NO_FACTS });
    if (!r.ok) {
      this.logDiagnostics(r, text, true);
      this.deps.log(`SIGHUP: ${this.deps.policyName} has errors; not applied, the rules in place stay`);
      return;
    }
    this.candidate = text;
    this.deps.log(`SIGHUP: read ${this.deps.policyName} again`);
    this.markDirty("SIGHUP");
  }

  /**
   * The lockout guard of a reload (apply's, for every SSH session open now): undefined when
   * each session's next connection would still be accepted by what the kernel will hold.
   */
  private refuses(r: CompileResult, text: string, rulesOf: (f: 4 | 6) => Ruleset | undefined): string | undefined {
    const sessions = this.deps.sessions?.() ?? [];
    if (typeof sessions === "string") return `the lockout guard cannot see the SSH sessions (${sessions})`;
    for (const pk of sessions) {
      const d = lockout(r.policy!, rulesOf(pk.family), pk);
      if (d) {
        for (const line of formatDiagnostics([{ ...d, notes: [{ message: `an SSH session from ${pk.src} is open now` }] }], this.deps.policyName, text).split("\n")) if (line) this.deps.log(line);
        return `it would not accept the next connection of the SSH session from ${pk.src}`;
      }
    }
    return undefined;
  }

  private logDiagnostics(r: CompileResult, text: string, errorsOnly: boolean): void {
    const ds = errorsOnly ? r.diagnostics.filter((d) => d.severity === "error") : r.diagnostics;
    for (const line of formatDiagnostics(ds, this.deps.policyName, text).split("\n")) if (line) this.deps.log(line);
  }

  /** What the last reconcile left out (its warnings, as logged): each is logged when it appears, not at every reconcile. */
  private leftOut = new Set<string>();

  private logLeftOut(r: CompileResult, text: string): void {
    const now = new Set<string>();
    for (const d of r.diagnostics) {
      if (!d.leftOut) continue;
      const shown = formatDiagnostics([d], this.deps.policyName, text);
      now.add(shown);
      if (this.leftOut.has(shown) && !this.deps.verbose) continue;
      for (const line of shown.split("\n")) if (line) this.deps.log(line);
    }
    this.leftOut = now;
  }

  /** What was said of an apply that is loading (said once while it loads). */
  private saidApplying?: string;
  /** The next reconcile reads Docker's facts in full (deps.facts): the first, after the event stream (re)opens, once events pause, at a periodic check. */
  private fullFactsNext = true;
  /** A reconcile read the facts quickly (deps.changedFacts) since the last full read. */
  private quickSince = false;
  /** When the last full read of the facts was (performance.now()). */
  private lastFull = -Infinity;

  /**
   * An apply has begun loading since this reconcile read the facts, or has loaded and waits for
   * confirmation since (a second review: one that did all that while this reconcile compiled had
   * its rules put back): this reconcile loads nothing, and starts again once it is done.
   */
  private applyBegan(had: Set<string>, drift: string[], full: boolean): ReconcileResult | undefined {
    const applying = this.deps.applying?.() ?? (this.whilePending === undefined && this.deps.pending?.() ? "an apply has loaded its rules and waits for confirmation" : undefined);
    if (!applying) return undefined;
    if (this.deps.verbose) this.deps.log(`${applying}: this reconcile loads nothing; again once it is done`);
    // (The containers it would have said it added or removed are said by the reconcile that loads them.)
    this.containers = had;
    return this.notNow({ changed: false, error: "applying" }, drift, full);
  }

  /** A reconcile that did not get as far as the kernel: what it was for (drift, a full check) is for the next one. */
  private notNow(r: ReconcileResult, drift: string[], full: boolean): ReconcileResult {
    this.drift = [...drift, ...this.drift];
    if (full) this.fullCheck = true;
    return r;
  }

  /** The policy and Docker's facts the last reconcile brought the kernel to (the facts' objects as the client keeps them). */
  private inStep?: { text: string; facts: Facts };
  /** What the compiles read of Docker's objects: the engine client replaces an object that changed, and never changes one. */
  private readonly factsMemo = new FactsMemo();

  /**
   * Nothing to do: the facts are the very objects the last reconcile had (the full read that
   * follows quick ones found nothing an event did not say), with the same policy, and nothing
   * else asks for a look at the kernel (drift, a periodic check, SIGHUP, an apply that waits).
   */
  private unchanged(facts: Facts, drift: string[], full: boolean): boolean {
    const was = this.inStep;
    this.inStep = undefined;
    if (!was || drift.length || full || this.candidate !== undefined || this.whilePending !== undefined || was.text !== this.policyText) return false;
    if (!sameFacts(was.facts, facts)) return false;
    this.inStep = was;
    if (this.deps.verbose) this.deps.log(`reconciled: nothing to change (Docker's facts as before, read in ${Math.round(performance.now() - this.readBegan)} ms)`);
    return true;
  }

  /** Docker's facts, unless they cannot be read or an apply waits for confirmation (then what the reconcile ends with). */
  private async readFacts(): Promise<Facts | ReconcileResult> {
    const applying = this.deps.applying?.();
    if (applying) {
      if (this.deps.verbose && applying !== this.saidApplying) this.deps.log(`${applying}: reconciling once it is done`);
      this.saidApplying = applying;
      return { changed: false, error: "applying" };
    }
    this.saidApplying = undefined;
    this.readBegan = performance.now();
    // (While the daemon is away after a container's link changed: the last facts, compiled without the addresses; see linkChanged.)
    const facts = this.closedAway ?? (await this.askDocker());
    if (!("raw" in facts)) return facts;
    // An apply that waits for confirmation: its rules stay, not this watcher's policy's (that would undo it). They are
    // kept in step with Docker all the same: a container removed meanwhile must leave no rule behind for the next one
    // given its address (a review found its DNAT reaching it for the whole wait).
    this.whilePending = undefined;
    const pending = this.deps.pending?.();
    if (pending) {
      const applied = this.deps.applied?.();
      const same = applied !== undefined && (applied.format === "nft") === (this.deps.nft !== undefined);
      if (pending !== this.waitingFor) this.deps.log(same ? `${pending}: keeping its rules in step with Docker until it ends` : `${pending}: not reconciling until it ends${applied ? ` (it loaded ${applied.format === "nft" ? "the nft file" : "iptables rules"})` : ""}`);
      this.waitingFor = pending;
      if (!same) return { changed: false, error: "pending" };
      this.whilePending = applied.text;
      return facts;
    }
    if (this.waitingFor) this.deps.log(`the apply that waited has ended: reconciling`);
    if (this.deps.verbose) for (const [id, why] of this.deps.notYet?.() ?? []) this.deps.log(`container ${id.slice(0, 12)} is starting; its rules wait for its start event: ${why}`);
    this.waitingFor = undefined;
    return facts;
  }

  /** Docker's facts as the daemon gives them (in full, or what changed), or what the reconcile ends with when it does not. */
  private async askDocker(): Promise<Facts | ReconcileResult> {
    // (In full while the daemon is away: it gives way to the per-container rules taken out, see linkChanged.)
    const quick = !this.away && !this.fullFactsNext && this.deps.changedFacts !== undefined;
    this.fullFactsNext = false;
    // (While the daemon is away, a read in full gives way too: to the per-container rules taken out, see linkChanged.)
    const yielding = !quick && (this.fullMayYield || this.away) ? new AbortController() : undefined;
    this.fullMayYield = false;
    this.yieldRead = yielding;
    try {
      const facts = await (quick ? this.deps.changedFacts!() : this.deps.facts(yielding?.signal));
      if (quick) this.quickSince = true;
      else {
        this.quickSince = false;
        this.lastFull = performance.now();
      }
      this.lastFacts = facts;
      return facts;
    } catch (e) {
      if (e instanceof FactsReadYielded && yielding?.signal.aborted) {
        // It gave way to an event, whose reconcile reads that event's containers alone; the full read comes once the
        // events pause again (a review: it was the event's own read, in full, that could not give way).
        if (this.deps.verbose) this.deps.log(`the read in full gave way to an event: again after it`);
        if (!this.away) this.quickSince = true;
        return { changed: false, error: "yielded" };
      }
      this.deps.log(`cannot read Docker's facts (${(e as Error).message}); the rules in place stay`);
      return { changed: false, error: (e as Error).message };
    } finally {
      if (this.yieldRead === yielding) this.yieldRead = undefined;
    }
  }

  /** The daemon's event stream is lost (from its end until it opens again). */
  private away = false;
  /** Docker's facts as the last read had them: what the per-container rules are taken out of while the daemon is away. */
  private lastFacts?: Facts;
  /** Docker's bridges as the last compile had them. */
  private bridges: ReadonlySet<string> = new Set();
  /** The ports of Docker's bridges when the daemon went away ("unknown": not listed; undefined: being listed). */
  private awayPorts?: Set<number> | "unknown";
  /** While the daemon is away, after a container's link changed: the facts reconciles use, compiled without the containers' addresses. */
  private closedAway?: Facts;
  private linkStream?: { close: () => void };

  /** The daemon's event stream ended or cannot be had: the ports of Docker's bridges now are listed, to know a new one. */
  private goneAway(): void {
    if (this.away) return;
    this.away = true;
    this.awayPorts = undefined;
    const links = this.deps.links;
    if (!links) return;
    const bridges = this.bridges;
    links.list().then(
      (l) => {
        if (this.away && this.awayPorts === undefined) this.awayPorts = bridgePorts(l, bridges);
      },
      () => {
        if (this.away && this.awayPorts === undefined) this.awayPorts = "unknown";
      },
    );
  }

  /** A line of the link monitor: while the daemon is away, a container's link that changed on one of its bridges. */
  private onLinkLine(line: string): void {
    if (!this.away || this.closedAway) return;
    const l = parseLinkLine(line);
    if (!l) return;
    // (Not listed, or not yet: any port on Docker's bridges is taken for a new one.)
    const what = containerLinkChange(l, this.bridges, this.awayPorts instanceof Set ? this.awayPorts : new Set());
    if (what) this.linkChanged(what);
  }

  /**
   * A container's link changed on one of Docker's bridges while the daemon cannot be asked. After
   * a crash, dockerd removes what ran and starts its --restart containers again before its API
   * answers, and may give a gone container's address to another: the rules in place would lead
   * the gone one's allowed ports there. Until the daemon answers, the reconciles compile the last
   * facts without the containers' addresses (CompileOptions.addressless): every rule to an address
   * (a DNAT, an allow) is taken out; the networks' own rules, the drops and the rules by port
   * (docker-proxy's and dockerd's sockets' guard) stay; with iptables on, only dockwall's chains are
   * loaded (plan). Nothing happens while nothing changes (a daemon restarted with live-restore
   * keeps its containers and their rules).
   */
  private linkChanged(what: string): void {
    if (!this.away || this.closedAway || !this.lastFacts) return;
    // (A facts object of its own: the compiles leave the containers' addresses out, CompileOptions.addressless.)
    this.closedAway = { raw: this.lastFacts.raw, source: `${this.lastFacts.source} (without the containers' addresses: dockerd cannot be asked)` };
    this.inStep = undefined;
    // (No read in full follows quick reads meanwhile: none is made, run() would spin on it. A review: the loop never gave way.)
    this.quickSince = false;
    this.deps.log(`dockerd cannot be asked and a container's link changed (${what}): it may have given a gone container's address to another; the rules to the containers' addresses are taken out until it answers (the networks' own rules, and those by port, stay)`);
    this.markDirty(`a container's link changed while dockerd cannot be asked: ${what}`);
  }

  /** Follows the host's links (deps.links), starting again with backoff when it ends. */
  private async followLinks(): Promise<void> {
    const links = this.deps.links;
    if (!links) return;
    await this.keepFollowing(
      () => (this.linkStream = links.follow((line) => this.onLinkLine(line))),
      (why) => this.deps.log(`cannot follow the host's links (${why}): while dockerd cannot be asked, the rules in place stay whatever it starts`),
      () => {},
      // What changed while it did not follow is not known: as a change, if the daemon is away.
      () => this.linkChanged("the link monitor ended"),
    );
  }

  /**
   * After loading a waiting apply's policy: if the apply ended meanwhile (confirmed, or rolled back, perhaps before
   * this load landed), reconcile again at once, with what is in force now.
   */
  private settledMeanwhile(pendingText: string | undefined): void {
    if (pendingText !== undefined && !this.deps.pending?.()) this.markDirty("the apply that waited has ended");
  }

  /**
   * Without the containers' addresses, a policy that does not compile (a check that needs them, a review found one): with no
   * container at all instead (the boot ruleset's facts), rather than the rules in place, which may lead to another container.
   */
  private orNoContainer(r: CompileResult, text: string, facts: Facts, opts: { format?: "nft"; nftState?: boolean }): CompileResult {
    if (r.ok || facts !== this.closedAway) return r;
    this.logDiagnostics(r, text, true);
    this.deps.log(`without the containers' addresses the policy does not compile: with no container instead, until dockerd answers`);
    return compile(text, { ...(opts.format ? { format: opts.format } : { noRender: true }), ...(opts.nftState ? { nftState: true } : {}), facts: bootFacts(facts), file: this.deps.policyName, factsErrors: "warn" });
  }

  /** Docker's bridges, as this compile has them (the link monitor's, while the daemon is away). */
  private bridgesOf(r: CompileResult): void {
    if (!this.away) this.bridges = new Set(r.policy!.networks.map((n) => n.bridge.value).filter(Boolean));
  }

  /** The containers the policy has now against the last reconcile's, as the log says them (+web -db). */
  private whoChanged(r: CompileResult): string[] {
    const names = new Set(r.policy!.containers.map((c) => c.name));
    const added = [...names].filter((n) => !this.containers.has(n));
    const removed = [...this.containers].filter((n) => !names.has(n));
    this.containers = names;
    return [...added.map((n) => `+${n}`), ...removed.map((n) => `-${n}`)];
  }

  /** One reconcile: facts, compile, compare, write what differs. */
  async reconcile(): Promise<ReconcileResult> {
    this.stats.reconciles++;
    if (this.deps.nft) return this.reconcileNft();
    // What the canonical spellings of rules kept for the last reconcile do not serve this one is let go (a watcher runs for months).
    newKeyGeneration();
    const drift = this.drift;
    this.drift = [];
    // What the kernel has is read while Docker's facts are (two processes, two CPUs).
    const saving = ([4, 6] as const).map((f) =>
      Promise.resolve()
        .then(() => this.deps.save(f))
        .then((text) => ({ text }), (e: unknown) => ({ error: e as Error })),
    );
    const full = this.fullCheck;
    this.fullCheck = false;
    const t0 = performance.now();
    const facts = await this.readFacts();
    if (!("raw" in facts)) return this.notNow(facts, drift, full);
    if (this.unchanged(facts, drift, full)) return { changed: false };
    const saved = await Promise.all(saving);
    const t1 = performance.now();
    // A policy read again on SIGHUP is tried first; if it may not be used, the one before is. (Not while an apply waits: it is kept for after.)
    const pendingText = this.whilePending;
    const candidate = pendingText === undefined ? this.candidate : undefined;
    if (pendingText === undefined) this.candidate = undefined;
    let plan = candidate !== undefined ? this.plan(candidate, facts, saved, true) : undefined;
    if (plan && "steps" in plan) {
      const afters = plan.afters;
      const why = this.refuses(plan.r, candidate!, (f) => (afters[f] ? toRuleset(afters[f]!, f) : undefined));
      if (why) {
        this.deps.log(`SIGHUP: ${this.deps.policyName} not applied: ${why}; the rules of the policy read before stay (apply it with 'dockwall apply --force' if that is meant)`);
        plan = undefined;
      } else {
        this.policyText = candidate!;
        this.deps.kept?.(candidate!);
        this.leftOut = new Set();
      }
    } else if (plan) {
      this.deps.log(`SIGHUP: ${this.deps.policyName} not applied; the rules of the policy read before stay`);
      plan = undefined;
    }
    const text = pendingText ?? this.policyText;
    plan ??= this.plan(text, facts, saved);
    if (!("steps" in plan)) return plan.result;
    const { r, steps, before } = plan;
    this.logLeftOut(r, text);
    const had = this.containers;
    const who = this.whoChanged(r);
    const t2 = performance.now();
    // --verbose: where a reconcile's time goes (the facts and the kernel are read side by side).
    const took = (load?: number) => `${Math.round(performance.now() - t0)} ms: facts and the loaded rules read ${Math.round(t1 - t0)} ms, compiled and compared ${Math.round(t2 - t1)} ms${load === undefined ? "" : `, loaded ${Math.round(load)} ms`}`;
    if (steps.length === 0) {
      if (this.deps.verbose) this.deps.log(`reconciled: nothing to change (${took()})`);
      if (!this.persisted && pendingText === undefined) this.save(text, facts);
      if (pendingText === undefined) this.inStep = { text, facts };
      return { changed: false };
    }
    // One transaction per family, IPv4 then IPv6; a refused load puts back what this reconcile loaded (apply/deploy.ts).
    // An apply that began loading while this reconcile read and compiled: its rules are not put back under it.
    const waitForApply = this.applyBegan(had, drift, full);
    if (waitForApply) return waitForApply;
    const t3 = performance.now();
    const d = deploy(
      steps.map((s) => ({ family: s.family, text: s.text, before: before[s.family]! })),
      { load: (f, t, noflush) => this.deps.restore(f, t, noflush) },
    );
    if (!d.ok) {
      for (const x of d.putBackFailed) this.deps.log(`AND putting back the IPv${x.family} rules failed: ${x.error}`);
      this.deps.log(`${d.family === 4 ? "iptables" : "ip6tables"}-restore refused the change (${d.error}); the rules from before stay`);
      this.containers = new Set();
      return { changed: false, error: "restore" };
    }
    this.stats.changes++;
    if (drift.length) this.deps.log(`the tables were changed (${drift.join("; ")}): putting back what the policy says`);
    if (pendingText === undefined) this.save(text, facts);
    if (pendingText === undefined) this.inStep = { text, facts };
    this.deps.log(`applied: ${who.length ? `containers ${who.join(" ")}; ` : ""}${steps.map((s) => s.what).join("; ")}${pendingText !== undefined ? " (the waiting apply's policy)" : ""}`);
    if (this.deps.verbose) this.deps.log(`reconciled in ${took(performance.now() - t3)}`);
    this.settledMeanwhile(pendingText);
    return { changed: true };
  }

  /** The policy compiled with the facts, and what would load: the changed chains per family, and what the kernel then holds. */
  private plan(
    text: string,
    facts: Facts,
    saved: ({ text: string } | { error: Error })[],
    candidate = false,
  ): { r: CompileResult; steps: { family: 4 | 6; text: string; what: string }[]; before: Partial<Record<4 | 6, string>>; afters: Partial<Record<4 | 6, SavedRuleset>> } | { result: ReconcileResult } {
    // Errors that only the facts cause are warnings here: what they concern is left out.
    const addressless = facts === this.closedAway;
    const r = this.orNoContainer(compile(text, { noRender: true, facts, file: this.deps.policyName, factsErrors: "warn", factsMemo: this.factsMemo, addressless }), text, facts, {});
    if (!r.ok) {
      this.logDiagnostics(r, text, true);
      this.deps.log(`the policy does not compile with Docker's facts now; the rules in place stay`);
      return { result: { changed: false, error: "policy" } };
    }
    this.bridgesOf(r);
    const before: Partial<Record<4 | 6, string>> = {};
    const afters: Partial<Record<4 | 6, SavedRuleset>> = {};
    const steps: { family: 4 | 6; text: string; what: string }[] = [];
    const drops: Partial<Record<4 | 6, InputDrop>> = {};
    for (const f of [4, 6] as const) {
      const wanted = r.generated!.rulesets[f]!;
      if (wanted.tables.length === 0) continue;
      const got = saved[f === 4 ? 0 : 1]!;
      if ("error" in got) {
        this.deps.log(`cannot read the loaded IPv${f} rules (${got.error.message}); nothing changed`);
        return { result: { changed: false, error: "save" } };
      }
      before[f] = got.text;
      // Without the containers' addresses, beside dockerd's own chains (iptables on): dockwall's chains alone. dockerd may be
      // writing its own as it starts; a rewrite of FORWARD from what was read before would undo what it did since (a review:
      // its jumps to DOCKER and its isolation chains lost, a published port dead and isolation bypassed).
      const owns = r.policy!.host !== undefined;
      const only = addressless && r.policy!.docker.iptables ? (t: string, c: string) => t === "filter" && (c === "DOCKER-USER" || c.startsWith("DOCKWALL") || (c === "INPUT" && owns)) : undefined;
      const live = parseSave(before[f]!);
      const step = reconcileStep(live, wanted, { ownsInput: owns, ...(only ? { only } : {}) });
      afters[f] = step.after;
      const drop = strandedInput(inputOf(live), inputOf(step.after));
      if (drop) drops[f] = drop;
      if (step.text) steps.push({ family: f, text: step.text, what: `IPv${f}: ${describeChanges(step.changes)}` });
    }
    // No host block, over the DROP policy of the one loaded before: its rules would go and the policy stay, and the host
    // would accept nothing. Not loaded (as apply refuses it): a reload keeps the policy read before, else the rules in place stay.
    if (Object.keys(drops).length) {
      const said = candidate
        ? strandedMessage(this.deps.policyName, drops, "then reload the watcher (until then it keeps the policy read before, INPUT's policy included)")
        : `${strandedMessage(this.deps.policyName, drops, "then the watcher loads it (when the tables change, or at the next --recheck)")}; the rules in place stay`;
      // Said once while it lasts (a failed reconcile is tried again, with backoff).
      if (candidate || said !== this.strandedSaid) this.deps.log(said);
      if (!candidate) this.strandedSaid = said;
      return { result: { changed: false, error: "input" } };
    }
    if (!candidate) this.strandedSaid = undefined;
    return { r, steps, before, afters };
  }

  /** What the last reconcile said of a host block's rules it would not take out of INPUT (said once while it lasts). */
  private strandedSaid?: string;

  /** The next reconcile reads the kernel whatever it knows (a periodic check, the monitor ended). */
  private fullCheck = false;
  /** watch -f nft: the tables as the last reconcile left them (with handles), and when. */
  private nftState?: { tables: NftState; at: number };
  /** watch -f nft: the handles of the rules the last delta added, being learnt (learnSoon). */
  private learning?: Promise<void>;
  /** watch -f nft: reconciles begun (a listing made meanwhile may not be what the kernel holds). */
  private nftReconciles = 0;

  /**
   * After the whole file was loaded (its handles not known): the tables listed once nft monitor
   * has watched long enough for nftKnown to trust what is listed, in the background, so that the
   * next change is a delta at once and not a listing first (150 ms at 2,000 containers). Dropped
   * if a reconcile began meanwhile; a change nft monitor reports meanwhile is drift, which the
   * next reconcile lists the tables for whatever is known.
   */
  private learnAllSoon(tables: string[]): void {
    const nft = this.deps.nft;
    const since = nft?.watchedSince?.();
    if (!nft || since === undefined) return;
    const reconciles = this.nftReconciles;
    const stale = () => this.stopped || this.nftState !== undefined || this.nftReconciles !== reconciles;
    void this.deps
      .sleep(Math.max(0, since + 1100 - performance.now()))
      .then(async () => {
        if (stale()) return;
        const at = performance.now();
        const listing = await nft.list(tables);
        if (!stale()) this.nftState = { tables: parseNftList(listing), at };
      })
      .catch(() => {});
  }

  /**
   * After a delta loaded without echo: the handles of the rules it added, learnt from their chains
   * alone while nothing happens, so that the next change (a container's rules deleted, or placed
   * before its bridge's final drop) need not wait for them. A chain that does not list as loaded
   * makes the tables be listed again, whole.
   */
  private learnSoon(): void {
    const s = this.nftState;
    const listChains = this.deps.nft?.listChains;
    if (!s || !listChains) return;
    const chains = unknownHandles(s.tables);
    if (!chains.length) return;
    this.learning = listChains(chains).then(
      (listing) => {
        if (this.nftState !== s) return;
        const learned = learnHandles(s.tables, listing);
        this.nftState = learned ? { tables: learned, at: s.at } : undefined;
      },
      () => {
        if (this.nftState === s) this.nftState = undefined;
      },
    );
  }

  /**
   * The tables as the last reconcile left them, if that still holds: nft monitor has followed
   * the kernel since well before then (a change by anyone else would have been reported, and
   * the tables are read again), and this reconcile is not for drift or a periodic check.
   */
  /** Whether the tables as the last reconcile left them are known and trusted now (nftKnown with nothing reported). */
  private nftKnownNow(): boolean {
    return this.nftKnown([], false) !== undefined && this.drift.length === 0;
  }

  /**
   * The periodic check of -f nft's tables beside the reconciles: listed, and held against what
   * the watcher knows it loaded. A difference is drift, put back as any other. "overtaken" when
   * a reconcile began meanwhile (what was listed may be from before its load); "unknown" when
   * there is nothing to hold it against, or it cannot be listed.
   */
  private async checkBeside(): Promise<"same" | "drift" | "overtaken" | "unknown"> {
    const s = this.nftState;
    const reconciles = this.nftReconciles;
    if (!s) return "unknown";
    let listing: string;
    try {
      listing = await this.deps.nft!.list(s.tables.tables);
    } catch {
      return "unknown";
    }
    if (this.nftReconciles !== reconciles || this.nftState !== s) return "overtaken";
    const d = diffNft(parseNftList(listing), s.tables);
    if (!d.changed) return "same";
    const what = d.parts.map((p) => `${p.table}${p.name ? ` ${p.kind} ${p.name}` : ""}`).join(", ");
    this.kernelChanged(`${what} (found by the periodic check)`);
    return "drift";
  }

  private nftKnown(drift: string[], full: boolean): NftState | undefined {
    const since = this.deps.nft?.watchedSince?.();
    const s = this.nftState;
    if (!s || since === undefined || since > s.at - 1000 || drift.length || full) return undefined;
    return s.tables;
  }

  /**
   * watch -f nft: the policy compiled to the --format nft file with the facts, compared with what
   * nft lists of its tables, loaded as one transaction when they differ. A SIGHUP's policy is
   * used only if dockwall's table would still accept every SSH session's next connection (the
   * other tables' input chains do not change with it).
   */
  private async reconcileNft(): Promise<ReconcileResult> {
    const nft = this.deps.nft!;
    this.nftReconciles++;
    const drift = this.drift;
    this.drift = [];
    const full = this.fullCheck;
    this.fullCheck = false;
    // A change reported, or a full check due: what was kept is forgotten now, not only if this reconcile gets that far.
    if (drift.length || full) this.nftState = undefined;
    const t0 = performance.now();
    const facts = await this.readFacts();
    if (!("raw" in facts)) return this.notNow(facts, drift, full);
    if (this.unchanged(facts, drift, full)) return { changed: false };
    const tFacts = performance.now();
    await this.learning;
    this.learning = undefined;
    const compiled = (text: string) => this.orNoContainer(compile(text, { format: "nft", facts, file: this.deps.policyName, factsErrors: "warn", factsMemo: this.factsMemo, nftState: true, addressless: facts === this.closedAway }), text, facts, { format: "nft", nftState: true });
    const pendingText = this.whilePending;
    const candidate = pendingText === undefined ? this.candidate : undefined;
    if (pendingText === undefined) this.candidate = undefined;
    let r: CompileResult | undefined;
    if (candidate !== undefined) {
      const c = compiled(candidate);
      // dockwall's table is what changes: the session must get through its input chain.
      const why = !c.ok ? "it does not compile with Docker's facts now" : this.refuses(c, candidate, (f) => c.generated!.rulesets[f]);
      if (why) {
        if (!c.ok) this.logDiagnostics(c, candidate, true);
        this.deps.log(`SIGHUP: ${this.deps.policyName} not applied: ${why}; the rules of the policy read before stay`);
      } else {
        r = c;
        this.policyText = candidate;
        this.deps.kept?.(candidate);
        this.leftOut = new Set();
      }
    }
    const text = pendingText ?? this.policyText;
    r ??= compiled(text);
    if (!r.ok) {
      this.logDiagnostics(r, text, true);
      this.deps.log(`the policy does not compile with Docker's facts now; the rules in place stay`);
      return { changed: false, error: "policy" };
    }
    this.bridgesOf(r);
    this.logLeftOut(r, text);
    // The file's tables, as parseNftList reads its text; the text itself only to load it whole.
    const want = r.nftState ?? parseNftList(r.output!);
    const tables = want.tables;
    const compiledResult = r;
    const file = () => compiledResult.output!;
    // What the kernel holds: known from the last load while nft monitor has watched since (it
    // says when anything else changes these tables); listed (with handles) otherwise.
    let live = this.nftKnown(drift, full);
    const listed = live === undefined;
    if (!live) {
      try {
        live = parseNftList(await nft.list(tables));
      } catch (e) {
        this.deps.log(`cannot list ${tables.join(", ")} with nft (${firstLine(e)}); nothing changed`);
        return { changed: false, error: "save" };
      }
    }
    let known = live;
    this.nftState = undefined;
    const t1 = performance.now();
    const d = diffNft(known, want);
    const had = this.containers;
    const who = this.whoChanged(r);
    if (!d.changed) {
      if (this.deps.verbose) this.deps.log(`reconciled: nothing to change (${Math.round(performance.now() - t0)} ms${listed ? ", tables listed" : ""})`);
      this.nftState = { tables: known, at: performance.now() };
      if (!this.persisted && pendingText === undefined) this.saveNft(text, facts);
      if (pendingText === undefined) this.inStep = { text, facts };
      return { changed: false };
    }
    const t2 = performance.now();
    // Only what differs, where the handles are known (nftDelta); the whole file otherwise, and
    // when nft refuses the delta (a rule changed under it since). After a delta, the tables are
    // known without listing them: the next reconcile need not list them.
    const needs = new Set<string>();
    let delta = nftDelta(known, want, needs);
    if (!delta && needs.size && nft.listChains) {
      // Handles the last delta's rules got and learnSoon did not learn yet: their chains listed, not the tables.
      const learned = await nft.listChains([...needs]).then((l) => learnHandles(known, l), () => undefined);
      if (learned) {
        known = learned;
        delta = nftDelta(known, want);
      }
    }
    const waitForApply = this.applyBegan(had, drift, full);
    if (waitForApply) return waitForApply;
    const echo = !nft.listChains;
    let whole = !delta;
    try {
      if (!delta) nft.load(file());
      else {
        try {
          // Where the new rules landed: echoed by nft (--echo --handle), or learnt from their chains after (learnSoon).
          // (A delta that cannot go on one line, a burst of many containers: nft -f, as a delta all the same.)
          const printed = !echo && nft.loadDelta && sessionLine(delta.text) !== undefined ? await nft.loadDelta(delta.text) : nft.load(delta.text, echo);
          const after = afterDelta(known, want, delta, echo ? (printed ?? "") : undefined);
          if (after) this.nftState = { tables: after, at: performance.now() };
        } catch (e) {
          // nft -i failing (no answer in time, gone) is not nft refusing the change: said as what it is, always.
          if (e instanceof SessionFailed) this.deps.log(`the change could not go through nft -i (${firstLine(e)}): loading the whole file`);
          else if (this.deps.verbose) this.deps.log(`nft refused the change alone (${firstLine(e)}): loading the whole file`);
          // (Refused, perhaps, because an apply changed the tables meanwhile: its rules are not put back.)
          const waitForApply = this.applyBegan(had, drift, full);
          if (waitForApply) return waitForApply;
          whole = true;
          nft.load(file());
        }
      }
    } catch (e) {
      this.deps.log(`nft refused the file (${firstLine(e)}); the tables from before stay (one transaction)`);
      this.containers = new Set();
      return { changed: false, error: "restore" };
    }
    this.stats.changes++;
    if (drift.length) this.deps.log(`the tables were changed (${drift.join("; ")}): putting back what the policy says`);
    // A table made whole is said as one; in the others, each chain or map that changed.
    const made = tables.filter((t) => !known.tables.includes(t));
    const parts = [...made.map((t) => `${t} (table made)`), ...d.parts.filter((p) => !made.includes(p.table)).map((p) => {
      const added = p.lines.filter((l) => l.kind === "added").length;
      const removed = p.lines.filter((l) => l.kind === "removed").length;
      // (The table itself: its flags, `flags dormant` say.)
      if (p.kind === "table") return `${p.table} (the table's flags)`;
      return `${p.table} ${p.kind} ${p.name}${p.status === "added" ? " (new)" : p.status === "removed" ? " (deleted)" : ""}${added ? ` +${added}` : ""}${removed ? ` -${removed}` : ""}`;
    })];
    this.deps.log(`applied: ${who.length ? `containers ${who.join(" ")}; ` : ""}nft: ${parts.join(", ")}${pendingText !== undefined ? " (the waiting apply's policy)" : ""}`);
    if (this.deps.verbose) this.deps.log(`reconciled in ${Math.round(performance.now() - t0)} ms${this.eventAt !== undefined ? ` (${Math.round(performance.now() - this.eventAt)} ms after the event)` : ""}: facts read ${Math.round(tFacts - t0)} ms, compiled${listed ? " and the tables listed" : ""} ${Math.round(t1 - tFacts)} ms, compared ${Math.round(t2 - t1)} ms, loaded ${whole ? "the whole file" : `${delta!.text.split("\n").length - 1} nft commands`} in ${Math.round(performance.now() - t2)} ms`);
    // The boot file and the new rules' handles once the rules are in place: neither holds them up.
    if (pendingText === undefined) this.saveNft(text, facts);
    if (pendingText === undefined) this.inStep = { text, facts };
    this.learnSoon();
    if (this.nftState === undefined) this.learnAllSoon(tables);
    this.settledMeanwhile(pendingText);
    return { changed: true };
  }

  /** watch -f nft --save-nft: the file for boot, compiled with no container running (watch/boot.ts). */
  private saveNft(text: string, facts: Facts): void {
    const persist = this.deps.nft?.persist;
    if (!persist) return;
    try {
      const boot = compile(text, { format: "nft", file: this.deps.policyName, facts: bootFacts(facts), factsErrors: "warn" });
      if (!boot.ok) throw new Error(`the policy does not compile without containers (${boot.diagnostics.find((d) => d.severity === "error")?.message})`);
      persist(boot.output!);
      this.persisted = true;
    } catch (e) {
      this.deps.log(`cannot keep the saved ruleset in step: ${(e as Error).message}`);
    }
  }

  private persisted = false;

  private save(text: string, facts: Facts): void {
    if (!this.deps.persist) return;
    try {
      this.deps.persist(text, facts);
      this.persisted = true;
    } catch (e) {
      this.deps.log(`cannot keep the saved ruleset in step: ${(e as Error).message}`);
    }
  }

  private onEvent(e: Record<string, unknown>): void {
    this.stats.events++;
    if ("malformed" in e) {
      this.deps.log(`an event that is not JSON (${String(e.malformed).slice(0, 80)}): reconciling anyway`);
      this.deps.forget?.();
      this.markDirty("malformed event");
      return;
    }
    const type = typeof e.Type === "string" ? e.Type : "";
    const action = typeof e.Action === "string" ? e.Action : typeof e.status === "string" ? e.status : "";
    const actor = (e.Actor as { Attributes?: Record<string, unknown> } | undefined)?.Attributes;
    const name = typeof actor?.name === "string" ? actor.name : "";
    const relevant = RELEVANT[type]?.includes(action.split(":")[0]!) ?? false;
    const id = (e.Actor as { ID?: unknown } | undefined)?.ID;
    if (type === "container" && typeof id === "string") this.deps.forget?.(id);
    else if (type === "network" && typeof actor?.container === "string") {
      // An endpoint made or removed changes that container only; a network made or removed, none.
      this.deps.forget?.(actor.container);
      if (action === "connect") this.deps.connected?.(actor.container);
    }
    if (this.deps.verbose) this.deps.log(`event: ${type} ${action} ${name}`.trimEnd());
    if (relevant) this.markDirty(`${type} ${action} ${name}`.trimEnd());
  }

  /** Follows the event stream for as long as the watcher runs, reconnecting with backoff. */
  private async follow(): Promise<void> {
    let backoff = 250;
    let lost = false;
    while (!this.stopped) {
      let opened = false;
      const s = this.deps.events(
        (e) => this.onEvent(e),
        () => {
          opened = true;
          backoff = 250;
          if (lost) this.deps.log(`the daemon is back: catching up`);
          lost = false;
          this.away = false;
          // (What was loaded without the containers' addresses is not Docker's facts, even if its objects are the same.)
          if (this.closedAway) this.inStep = undefined;
          this.closedAway = undefined;
          this.awayPorts = undefined;
          this.deps.forget?.();
          this.fullFactsNext = true;
          // Whatever happened while nobody listened is caught up by one reconcile.
          this.markDirty("event stream opened");
        },
      );
      this.stream = s;
      try {
        await s.done;
        if (!this.stopped && (opened || !lost)) this.deps.log(`the daemon's event stream ended (dockerd stopped or restarted); the rules in place stay; reconnecting`);
      } catch (e) {
        if (!lost) this.deps.log(`${(e as Error).message}; the rules in place stay; retrying`);
      }
      lost = true;
      if (this.stopped) break;
      this.goneAway();
      await this.deps.sleep(backoff);
      // At least once a second: after a crash, dockerd starts its --restart containers before its API answers, at whatever
      // addresses it hands out, and until the watcher is back the rules in place can lead a port to the container now at an
      // address (a review). A connect to a socket that is not there costs nothing.
      backoff = Math.min(backoff * 2, EVENTS_RETRY_MAX_MS);
    }
  }

  /** Follows the kernel's changes (kernelEvents), starting it again with backoff when it ends. */
  private async monitor(): Promise<void> {
    const watch = this.deps.kernelEvents;
    if (!watch) return;
    let said = false;
    await this.keepFollowing(
      () => (this.kernelStream = watch((what) => this.kernelChanged(what))),
      // Not there (no xtables-monitor, no nf_tables): the full checks are what is left.
      (why) => this.deps.log(`cannot follow the kernel's changes (${why}); ${this.deps.recheckMs ? `a full check every ${Math.round(this.deps.recheckMs / 1000)} s still puts drift back` : "drift is put back only at the next Docker event (--recheck sets full checks)"}`),
      (why) => {
        // A big transaction overflows its netlink socket (ENOBUFS): what it missed is read by a reconcile, and it starts again.
        if (this.deps.verbose || !said) this.deps.log(`the kernel's change reports were cut (${why}): reading the tables again, and following them again`);
        said = true;
      },
      () => {
        // It ended: the tables may have changed meanwhile.
        this.fullCheck = true;
        this.markDirty("the kernel's change monitor ended");
      },
    );
  }

  /**
   * Follows a monitor (a process that reports a line at a time) until stop(), starting it again
   * with backoff when it ends: `missing` when it cannot run here (said once, not tried again),
   * `cut` when it failed, `ended` after each end.
   */
  private async keepFollowing(start: () => { done: Promise<void> }, missing: (why: string) => void, cut: (why: string) => void, ended: () => void): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const m = start();
      const started = Date.now();
      try {
        await m.done;
      } catch (e) {
        const why = (e as Error).message;
        if (/ENOENT|not found|No such file/.test(why)) return missing(why);
        cut(why);
      }
      if (this.stopped) break;
      ended();
      backoff = Date.now() - started > 10_000 ? 100 : Math.min(backoff * 2, 10_000);
      await this.nap(backoff);
    }
  }

  private kernelStream?: { close: () => void };

  /** Sleeps `ms`, in short naps so that a stop is not kept waiting (SIGTERM ends the watcher at once). */
  private async nap(ms: number): Promise<void> {
    for (let left = ms; left > 0 && !this.stopped; left -= 250) await this.deps.sleep(Math.min(left, 250));
  }

  /** The backstop: a full check every recheckMs. */
  private async recheck(): Promise<void> {
    const every = this.deps.recheckMs;
    if (!every) return;
    let overtaken = 0;
    while (!this.stopped) {
      await this.nap(every);
      if (this.stopped) break;
      // -f nft with nft monitor following the kernel: the tables listed beside the reconciles, not in their way (a
      // listing takes 150 ms at 2,000 containers, and an event that came then waited for it); Docker's facts read in
      // full by a read that gives way to an event. Done in the loop, as before, if reconciles overtook it three times.
      if (this.deps.nft && overtaken < 3 && this.nftKnownNow()) {
        const r = await this.checkBeside();
        overtaken = r === "overtaken" ? overtaken + 1 : 0;
        if (r !== "unknown") {
          this.fullFactsNext = true;
          this.fullMayYield = true;
          this.markDirty("periodic check", false);
          continue;
        }
      }
      overtaken = 0;
      this.fullCheck = true;
      this.fullFactsNext = true;
      this.markDirty("periodic check");
    }
  }

  /** Waits until markDirty() or stop(), or `ms` (then false), whichever comes first. */
  private async quiet(ms?: number): Promise<boolean> {
    let woke = false;
    const wake = new Promise<void>((r) => (this.wake = () => ((woke = true), r())));
    await (ms === undefined ? wake : Promise.race([wake, this.deps.sleep(ms)]));
    this.wake = undefined;
    return woke;
  }

  /** Runs until stop(): follows events and reconciles whenever something is dirty. */
  async run(): Promise<void> {
    const following = this.follow();
    const monitoring = this.monitor();
    const linking = this.followLinks();
    const checking = this.recheck();
    let retry = this.deps.retryMs;
    while (!this.stopped) {
      // Each turn gives way to the event loop (timers, signals, child processes): a turn that finds nothing to do must not
      // come round again without (a review found the loop spinning while dockerd could not be asked, SIGTERM unheard).
      await new Promise((r) => setImmediate(r));
      if (!this.dirty && this.quickSince && !this.closedAway) {
        // Quick reads since the last full one: a full read once the events pause (at once when the last is older than
        // FULL_FACTS_EVERY_MS), which finds what an event dockerd dropped (under load it drops them) would have said.
        const overdue = performance.now() - this.lastFull >= FULL_FACTS_EVERY_MS;
        if ((overdue || !(await this.quiet(FACTS_SETTLE_MS))) && !this.dirty && !this.stopped) {
          this.fullFactsNext = true;
          // (Overdue, it goes to the end whatever comes: at least one in FULL_FACTS_EVERY_MS, however many events.)
          this.fullMayYield = !overdue;
          this.markDirty("Docker's facts read in full after the events", false);
        }
      }
      if (!this.dirty && !this.stopped) await this.quiet();
      if (this.stopped) break;
      // The first event after a quiet spell is reconciled at once (a new container's rules wait for nothing). An event
      // that comes within the quiet time of the one before waits the quiet time: the rest of a burst is folded into one.
      if (this.quietBefore < this.deps.debounceMs) await this.deps.sleep(this.deps.debounceMs);
      this.quietBefore = Infinity;
      this.dirty = false;
      this.eventAt = this.firstMark;
      this.firstMark = undefined;
      const r = await this.reconcile();
      // An apply waits for confirmation: look again shortly (a confirm or rollback ends it).
      if (r.error === "pending") {
        await this.deps.sleep(500);
        this.dirty = true;
      } else if (r.error === "applying") {
        // (What fell through while the apply loaded: the drift it made, events.)
        await this.deps.sleep(APPLYING_POLL_MS);
        this.dirty = true;
      } else if (r.error === "yielded") {
        // (The event it gave way to is reconciled next.)
      } else if (r.error && retry !== undefined) {
        // Failed (facts, a refused load…): tried again with backoff, not only at the next event.
        if (this.deps.verbose) this.deps.log(`trying again in ${retry} ms`);
        // (Sooner if Docker says something meanwhile, or its event stream opens again: a second review found a new
        // container waiting out the backoff.)
        await this.quiet(retry);
        retry = Math.min(retry * 2, 60_000);
        this.dirty = true;
      } else if (!r.error) retry = this.deps.retryMs;
      // The waiting apply's rules kept in step: until it ends (a confirm or rollback), look at it every 500 ms, and
      // reconcile at once when it has ended, or when Docker changes something meanwhile.
      // (Quick reads made while it waits are followed by a full one as at any time: the top of this loop.)
      while (this.whilePending !== undefined && !this.dirty && !this.stopped && !this.quickSince) {
        await this.deps.sleep(500);
        if (!this.deps.pending?.()) this.dirty = true;
      }
    }
    this.kernelStream?.close();
    this.linkStream?.close();
    await Promise.all([following, monitoring, checking, linking]);
  }
}

/** The same facts: every container the very object `a` had (the client keeps an object until the container changes), the same networks, version and info. */
function sameFacts(a: Facts, b: Facts): boolean {
  const x = a.raw;
  const y = b.raw;
  if (x.containers.length !== y.containers.length) return false;
  const had = new Set(x.containers);
  if (!y.containers.every((c) => had.has(c))) return false;
  return JSON.stringify([x.networks, x.version, x.info]) === JSON.stringify([y.networks, y.version, y.info]);
}
