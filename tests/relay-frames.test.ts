// The protocol as the relay will carry it: clients speak frames, a relay in the middle sees only
// frames and opaque ciphertext, and the mailbox owner proves ownership over a fresh challenge.
import {
  acceptInvitation,
  createInvitation,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  encodeFrame,
  encodePayload,
  type Frame,
  Identity,
  InvitationBook,
  MailboxAction,
  MailboxKey,
  mailboxAddress,
  newMessageId,
  toHex,
  verifyMailboxProof,
} from "@parley/protocol";
import { describe, expect, it } from "vitest";

/** A toy in-memory relay: just enough to check the frames carry what a relay needs. */
class ToyRelay {
  readonly challenge = new Uint8Array(32).map((_, i) => i);
  private readonly owners = new Map<string, Uint8Array>();
  private readonly boxes = new Map<string, Uint8Array[]>();

  handle(bytes: Uint8Array): Frame[] {
    const f = decodeFrame(bytes);
    const ok: Frame = { type: "ok", requestId: f.requestId };
    const error = (code: "AUTH" | "UNKNOWN_MAILBOX"): Frame => ({
      type: "error",
      requestId: f.requestId,
      code,
      message: code,
    });
    switch (f.type) {
      case "createMailbox": {
        const address = mailboxAddress(f.ownerKey);
        if (!verifyMailboxProof(f.ownerKey, MailboxAction.create, this.challenge, address, f.signature))
          return [error("AUTH")];
        this.owners.set(toHex(address), f.ownerKey);
        this.boxes.set(toHex(address), []);
        return [ok];
      }
      case "deposit": {
        const box = this.boxes.get(toHex(f.address));
        if (!box) return [error("UNKNOWN_MAILBOX")];
        box.push(f.ciphertext);
        return [ok];
      }
      case "subscribe": {
        const owner = this.owners.get(toHex(f.address));
        if (!owner) return [error("UNKNOWN_MAILBOX")];
        if (!verifyMailboxProof(owner, MailboxAction.subscribe, this.challenge, f.address, f.signature))
          return [error("AUTH")];
        const waiting = this.boxes.get(toHex(f.address))!.splice(0);
        return [
          ok,
          ...waiting.map(
            (ciphertext, i): Frame => ({
              type: "deliver",
              requestId: 0,
              address: f.address,
              messageId: new Uint8Array(16).fill(i),
              receivedAt: 1,
              ciphertext,
            }),
          ),
        ];
      }
      default:
        return [ok];
    }
  }
}

describe("protocol over relay frames", () => {
  it("an invitation, an Accept deposited as a frame, delivered to the subscribed owner, opens a session", () => {
    const relay = new ToyRelay();
    const alice = Identity.generate();
    const bob = Identity.generate();
    const box = MailboxKey.generate();
    const send = (f: Frame) => relay.handle(encodeFrame(f)).map((b) => decodeFrame(encodeFrame(b)));

    expect(
      send({
        type: "createMailbox",
        requestId: 1,
        ownerKey: box.publicKey,
        signature: box.prove(MailboxAction.create, relay.challenge),
      }),
    ).toEqual([{ type: "ok", requestId: 1 }]);

    const { code, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: "ws://127.0.0.1:7777",
      mailbox: box.address,
    });
    const book = new InvitationBook();
    book.add(pending);
    const invitation = decodeInvitation(code);
    const { message } = acceptInvitation(bob, invitation, {
      mailbox: MailboxKey.generate().address,
      relayUrl: "ws://127.0.0.1:7777",
      plaintext: encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text: "knock knock" }),
    });
    expect(
      send({
        type: "deposit",
        requestId: 2,
        address: invitation.mailbox,
        clientMessageId: newMessageId(),
        ciphertext: message,
      }),
    ).toEqual([{ type: "ok", requestId: 2 }]);

    const forged = MailboxKey.generate().prove(MailboxAction.subscribe, relay.challenge);
    expect(
      send({ type: "subscribe", requestId: 3, address: box.address, signature: forged })[0],
    ).toMatchObject({
      type: "error",
      code: "AUTH",
    });

    const replies = send({
      type: "subscribe",
      requestId: 4,
      address: box.address,
      signature: box.prove(MailboxAction.subscribe, relay.challenge),
    });
    const delivered = replies.find((f) => f.type === "deliver");
    if (delivered?.type !== "deliver") throw new Error("nothing delivered");
    const contact = book.accept(alice, delivered.ciphertext);
    const first = decodePayload(contact.plaintext);
    expect(first.type === "text" && first.text).toBe("knock knock");
  });
});
