import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { DumpInterruptedError, NetlinkError } from '../../../src/dataplane/errors.ts';
import { NlWriter, splitMessages } from '../../../src/dataplane/nlattr.ts';
import { type BatchItem, NetlinkTransport, type RawSocketLike } from '../../../src/dataplane/transport.ts';
import {
  NLM_F_ACK,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
} from '../../../src/dataplane/uapi/netlink.ts';

/** A fake kernel: answers each sendmsg like rtnetlink does (NLMSG_ERROR on failure or when ACK is asked). */
class FakeKernel extends EventEmitter implements RawSocketLike {
  sendmsgs: number[] = []; // messages per sendmsg
  /** Decides the errno of one message (0 = ok); `attempt` counts how often this object was sent. */
  verdict: (object: number, attempt: number) => number = () => 0;
  dumpParts: { flags: number }[] = [];
  private attempts = new Map<number, number>();
  ref(): void {}
  unref(): void {}
  close(): void {}
  send(bufs: Buffer[], _opts: object, cb: (err?: NodeJS.ErrnoException) => void): void {
    const msgs = bufs.flatMap((b) => splitMessages(b));
    this.sendmsgs.push(msgs.length);
    cb();
    const answers: Buffer[] = [];
    for (const m of msgs) {
      if (m.type === 26) {
        // RTM_GETROUTE dump: parts, then DONE
        for (const p of this.dumpParts)
          answers.push(header(24, NLM_F_MULTI | p.flags, m.seq, Buffer.alloc(12)));
        answers.push(header(NLMSG_DONE, NLM_F_MULTI, m.seq, Buffer.alloc(4)));
        continue;
      }
      const object = m.data.readUInt32LE(16); // our test messages carry their object number first
      const n = (this.attempts.get(object) ?? 0) + 1;
      this.attempts.set(object, n);
      const errno = this.verdict(object, n);
      if (errno !== 0 || (m.flags & NLM_F_ACK) !== 0) {
        const body = Buffer.alloc(4 + 16);
        body.writeInt32LE(-errno, 0);
        m.data.copy(body, 4, 0, 16);
        answers.push(header(NLMSG_ERROR, 0, m.seq, body));
      }
    }
    setImmediate(() => this.emit('message', Buffer.concat(answers)));
  }
}

function header(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, body]);
}

function items(n: number): BatchItem[] {
  const w = new NlWriter();
  return Array.from({ length: n }, (_, i) => {
    w.reset();
    const m = w.beginMessage(24, 0x601);
    w.u32(i);
    w.endMessage(m);
    return { msg: w.take(), op: 'add route', object: () => `route #${i}` };
  });
}

describe('netlink transport (fake kernel)', () => {
  it('sends 64 messages per sendmsg and asks an ACK only of the last (the barrier)', async () => {
    const k = new FakeKernel();
    const t = new NetlinkTransport(0, k);
    const acks: number[] = [];
    const orig = k.send.bind(k);
    k.send = (bufs, opts, cb) => {
      acks.push(bufs.flatMap((b) => splitMessages(b)).filter((m) => (m.flags & NLM_F_ACK) !== 0).length);
      orig(bufs, opts, cb);
    };
    const r = await t.writeBatch(items(200));
    expect(r).toMatchObject({ ok: 200, failed: [], retries: 0 });
    expect(k.sendmsgs).toEqual([64, 64, 64, 8]);
    expect(acks).toEqual([1, 1, 1, 1]);
  });

  it('retries ENOMEM/ENOBUFS with smaller batches, then grows again; other errors come back typed, naming the object', async () => {
    const k = new FakeKernel();
    k.verdict = (o, attempt) =>
      o === 70 ? 17 : o % 10 === 0 && attempt === 1 ? 12 : o === 33 && attempt < 3 ? 105 : 0;
    const t = new NetlinkTransport(0, k);
    const r = await t.writeBatch(items(200));
    expect(r.ok).toBe(199);
    expect(r.failed).toHaveLength(1);
    expect(r.failed[0]!.index).toBe(70);
    expect(r.failed[0]!.error).toBeInstanceOf(NetlinkError);
    expect(r.failed[0]!.error.message).toBe(
      'add route route #70: kernel answered EEXIST; it already exists: use replace, or reconcile',
    );
    expect(r.retries).toBe(19 + 2); // ENOMEM once for 0, 10, ..., 190 except 70 (EEXIST); ENOBUFS twice for 33
    expect(Math.min(...k.sendmsgs)).toBeLessThan(64); // shrank after the transient errors
  });

  it('a dump flagged NLM_F_DUMP_INTR throws DumpInterruptedError instead of returning partial data', async () => {
    const k = new FakeKernel();
    const t = new NetlinkTransport(0, k);
    const req = () => {
      const w = new NlWriter();
      const m = w.beginMessage(26, 0x301);
      w.zeros(12);
      w.endMessage(m);
      return w.take();
    };
    k.dumpParts = [{ flags: 0 }, { flags: 0 }];
    let n = 0;
    await t.dump(req(), 'IPv6 routes', () => n++);
    expect(n).toBe(2);
    k.dumpParts = [{ flags: 0 }, { flags: NLM_F_DUMP_INTR }];
    await expect(t.dump(req(), 'IPv6 routes', () => {})).rejects.toBeInstanceOf(DumpInterruptedError);
  });
});
