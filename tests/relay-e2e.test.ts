// Two people chat through the real relay process: invitation out of band, the Accept deposited
// in the inviter's mailbox, replies in the accepter's mailbox, everything end-to-end encrypted.
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  decodePayload,
  encodePayload,
  HandshakeError,
  hostedKemKeyLocation,
  hostedKemKeyUpload,
  Identity,
  InvitationBook,
  MailboxKey,
  newMessageId,
  openHostedKemKey,
  type Session,
  safetyNumber,
} from "@parley/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay, TestClient } from "../packages/relay/test/helpers.js";

const text = (t: string) => encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text: t });
const read = (b: Uint8Array) => {
  const p = decodePayload(b);
  return p.type === "text" ? p.text : p.type;
};

describe("Alice and Bob through a real relay", () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await startRelay(["--storage", "memory"]);
  });
  afterAll(async () => {
    await relay.stop();
  });

  it("exchange messages the relay only ever sees as ciphertext", async () => {
    const url = `ws://127.0.0.1:${relay.port}`;
    const alice = Identity.generate();
    const bob = Identity.generate();
    const aliceBox = MailboxKey.generate();
    const bobBox = MailboxKey.generate();
    const a = await TestClient.connect(relay.port);
    const b = await TestClient.connect(relay.port);
    await a.createMailbox(aliceBox);
    await b.createMailbox(bobBox);
    await a.subscribe(aliceBox);
    await b.subscribe(bobBox);

    const book = new InvitationBook();
    const { code, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: url,
      mailbox: aliceBox.address,
    });
    book.add(pending);

    // Bob accepts and sends two messages before Alice has answered.
    const inv = decodeInvitation(code);
    const accepted = acceptInvitation(bob, inv, {
      mailbox: bobBox.address,
      relayUrl: url,
      plaintext: text("hi alice"),
    });
    const bobSession: Session = accepted.session;
    const secret = "meet at the usual place";
    expect(await b.deposit(inv.mailbox, accepted.message, newMessageId())).toMatchObject({ type: "ok" });
    expect(await b.deposit(inv.mailbox, bobSession.encrypt(text(secret)), newMessageId())).toMatchObject({
      type: "ok",
    });

    const first = await a.next();
    if (first.type !== "deliver") throw new Error("expected a delivery");
    expect(Buffer.from(first.ciphertext).includes(Buffer.from(secret))).toBe(false);
    const contact = book.accept(alice, first.ciphertext, { now: first.receivedAt });
    expect(read(contact.plaintext)).toBe("hi alice");
    await a.ack(aliceBox.address, first.messageId);
    const second = await a.next();
    if (second.type !== "deliver") throw new Error("expected a delivery");
    expect(Buffer.from(second.ciphertext).includes(Buffer.from(secret))).toBe(false);
    expect(read(contact.session.decrypt(second.ciphertext))).toBe(secret);
    await a.ack(aliceBox.address, second.messageId);

    // Alice answers in Bob's mailbox, which she learned from the sealed Accept.
    await a.deposit(contact.mailbox, contact.session.encrypt(text("hello bob")), newMessageId());
    const reply = await b.next();
    if (reply.type !== "deliver") throw new Error("expected a delivery");
    expect(read(bobSession.decrypt(reply.ciphertext))).toBe("hello bob");
    expect(bobSession.awaitingReply).toBe(false);

    expect(safetyNumber(alice.publicIdentity, contact.identity).digits).toBe(
      safetyNumber(bob.publicIdentity, inv.identity).digits,
    );
    a.close();
    b.close();
  });

  it("§4.6 a post-quantum invitation: the KEM key is hosted as a blob, fetched and checked, and the session is hybrid; without the blob the accepter stops", async () => {
    const url = `ws://127.0.0.1:${relay.port}`;
    const alice = Identity.generate();
    const bob = Identity.generate();
    const aliceBox = MailboxKey.generate();
    const bobBox = MailboxKey.generate();
    const a = await TestClient.connect(relay.port);
    const b = await TestClient.connect(relay.port);
    await a.createMailbox(aliceBox);
    await b.createMailbox(bobBox);
    await a.subscribe(aliceBox);
    const book = new InvitationBook();
    const { code, pending } = createInvitation(alice, { relayUrl: url, mailbox: aliceBox.address });
    book.add(pending);
    const inv = decodeInvitation(code);
    const where = hostedKemKeyLocation(inv);
    const fetchKey = async () => {
      const answer = await b.request({
        type: "getChunk",
        requestId: 0,
        blobId: where.blobId,
        readToken: where.readToken,
        index: 0,
      });
      return answer.type === "chunk" ? answer.sealedChunk : null;
    };

    // Not uploaded yet: the relay has no such blob, and the accepter refuses to go on.
    expect(
      await b.request({
        type: "getChunk",
        requestId: 0,
        blobId: where.blobId,
        readToken: where.readToken,
        index: 0,
      }),
    ).toMatchObject({
      type: "error",
      code: "UNKNOWN_BLOB",
    });
    const missing = await fetchKey()
      .then((chunk) => openHostedKemKey(inv, chunk))
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HandshakeError);
    expect((missing as HandshakeError).code).toBe("KEM_KEY_MISSING");

    const up = hostedKemKeyUpload(pending);
    const create = { type: "createBlob", requestId: 0, ...up } as const;
    expect(await a.request(create)).toMatchObject({ type: "ok" });
    expect(await a.request(create)).toMatchObject({ type: "ok" }); // re-creating is idempotent
    const put = {
      type: "putChunk",
      requestId: 0,
      blobId: up.blobId,
      writeToken: up.writeToken,
      index: 0,
      sealedChunk: up.sealedChunk,
    } as const;
    expect(await a.request(put)).toMatchObject({ type: "ok" });

    const accepted = acceptInvitation(bob, inv, {
      mailbox: bobBox.address,
      relayUrl: url,
      plaintext: text("hi alice, post-quantum"),
      kemPublicKey: openHostedKemKey(inv, await fetchKey()),
    });
    expect(accepted.postQuantum).toBe(true);
    expect(await b.deposit(inv.mailbox, accepted.message, newMessageId())).toMatchObject({ type: "ok" });
    const first = await a.next();
    if (first.type !== "deliver") throw new Error("expected a delivery");
    const contact = book.accept(alice, first.ciphertext, { now: first.receivedAt });
    expect([contact.postQuantum, read(contact.plaintext)]).toEqual([true, "hi alice, post-quantum"]);
    await a.ack(aliceBox.address, first.messageId);
    // Consumed: the inviter withdraws the key.
    expect(
      await a.request({ type: "deleteBlob", requestId: 0, blobId: up.blobId, writeToken: up.writeToken }),
    ).toMatchObject({ type: "ok" });
    expect(await fetchKey()).toBeNull();
    a.close();
    b.close();
  });
});
