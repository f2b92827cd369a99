// A walk through the protocol with two local parties, Alice and Bob: identities, a post-quantum
// invitation code and its KEM key hosted at the relay, the hybrid handshake, a few ratchet messages
// (one lost, one late), safety numbers, and the frames Alice and Bob would send to the relay. Run
// with `npm start` from the repository root.
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  decodePayload,
  encodeFrame,
  encodePayload,
  fingerprint,
  HandshakeError,
  hostedKemKeyUpload,
  Identity,
  InvitationBook,
  InvitationError,
  MailboxKey,
  newMessageId,
  openHostedKemKey,
  type Session,
  safetyNumber,
} from "../src/index.js";

const RELAY = "wss://relay.example.org";
const say = (who: string, text: string) => console.log(`${who.padEnd(6)}${text}`);

function send(from: Session, text: string): Uint8Array {
  return from.encrypt(encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text }));
}
function receive(to: Session, wire: Uint8Array): string {
  const p = decodePayload(to.decrypt(wire));
  return p.type === "text" ? p.text : `(${p.type} receipt)`;
}

const alice = Identity.generate();
const bob = Identity.generate();
const aliceMailbox = MailboxKey.generate();
const bobMailbox = MailboxKey.generate();
say("alice", `identity ${fingerprint(alice.publicIdentity)}`);
say("bob", `identity ${fingerprint(bob.publicIdentity)}`);

const book = new InvitationBook();
const { code, pending } = createInvitation(alice, { relayUrl: RELAY, mailbox: aliceMailbox.address });
book.add(pending);
// Her one-time ML-KEM-768 key is too long for the code: it goes to the relay as a sealed blob.
const upload = hostedKemKeyUpload(pending);
const hosting =
  encodeFrame({ type: "createBlob", requestId: 1, ...upload }).length +
  encodeFrame({ type: "putChunk", requestId: 2, index: 0, ...upload }).length;
say("alice", `hosts her post-quantum key at the relay (${hosting} bytes of createBlob and putChunk)`);
console.log(`\nAlice's one-time invitation (${code.length} characters, shared out of band):\n${code}\n`);

try {
  decodeInvitation(code.slice(0, 40));
} catch (e) {
  if (e instanceof InvitationError) say("bob", `a truncated paste is refused: ${e.code}: ${e.message}`);
}

const invitation = decodeInvitation(code);
try {
  openHostedKemKey(invitation, null);
} catch (e) {
  if (e instanceof HandshakeError)
    say("bob", `a relay that withholds the key stops the handshake: ${e.code}`);
}
const kemPublicKey = openHostedKemKey(invitation, upload.sealedChunk);
say("bob", "fetched Alice's key; it matches the commitment in her code");
const first = encodePayload({
  type: "text",
  id: newMessageId(),
  sentAt: Date.now(),
  text: "Hi Alice, it's Bob.",
});
const { session: bobSession, message: acceptWire } = acceptInvitation(bob, invitation, {
  mailbox: bobMailbox.address,
  relayUrl: RELAY,
  plaintext: first,
  kemPublicKey,
});
const deposit = encodeFrame({
  type: "deposit",
  requestId: 1,
  address: invitation.mailbox,
  clientMessageId: newMessageId(),
  ciphertext: acceptWire,
});
say("bob", `accepts; deposit frame of ${deposit.length} bytes (the relay sees only ciphertext)`);

const contact = book.accept(alice, acceptWire);
const aliceSession = contact.session;
const hello = decodePayload(contact.plaintext);
say(
  "alice",
  `new contact ${fingerprint(contact.identity)} says: ${hello.type === "text" ? hello.text : hello.type}`,
);
say("alice", contact.postQuantum ? "the session is post-quantum (X25519 + ML-KEM-768)" : "classical session");

try {
  book.accept(alice, acceptWire);
} catch (e) {
  say("alice", `the same Accept replayed opens no second session: ${(e as Error).message}`);
}

const a1 = send(aliceSession, "Hello Bob! Check our safety number.");
const a2 = send(aliceSession, "(this one is lost on the way)");
const a3 = send(aliceSession, "And this one arrives before the one after it.");
const a4 = send(aliceSession, "Last one.");
say("bob", `got: ${receive(bobSession, a1)}`);
say("bob", `got: ${receive(bobSession, a4)}`);
say("bob", `got (late): ${receive(bobSession, a3)}`);
void a2;
const b1 = send(bobSession, "All good here.");
say("alice", `got: ${receive(aliceSession, b1)}`);
try {
  receive(aliceSession, b1);
} catch (e) {
  say("alice", `a replayed message is refused: ${(e as Error).message}`);
}

const aliceView = safetyNumber(alice.publicIdentity, contact.identity);
const bobView = safetyNumber(bob.publicIdentity, invitation.identity);
console.log(`
Safety number (Alice's view): ${aliceView.display}`);
console.log(`Safety number (Bob's view):   ${bobView.display}`);
console.log(aliceView.digits === bobView.digits ? "They match: no one swapped the keys." : "MISMATCH");
