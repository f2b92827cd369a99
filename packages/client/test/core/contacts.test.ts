// Contacts (core/contacts.ts): names that never look alike, finding a contact, renames and
// safety numbers, over a real store.
import { afterEach, describe, expect, it } from "vitest";
import { Contacts, contactView, uniqueName } from "../../src/core/contacts.js";
import { MAX_NAME_LENGTH, nameSkeleton } from "../../src/text.js";
import { cleanupStores, contactRecord, harness } from "./helpers.js";

afterEach(cleanupStores);

const skeletons = (...names: string[]) => new Set(names.map(nameSkeleton));

describe("uniqueName", () => {
  it("keeps a name nothing looks like", () => {
    expect(uniqueName("Bob", skeletons("Alice"), "ab12 cd34")).toBe("Bob");
  });

  it("adds the fingerprint's first characters to a name that looks like a taken one", () => {
    // Cyrillic Ve and o look like Latin B and o; case does not tell names apart either.
    expect(uniqueName("\u0412\u043eb", skeletons("Bob"), "ab12 cd34")).toBe("\u0412\u043eb (ab12)");
    expect(uniqueName("bob", skeletons("Bob"), "ab12 cd34")).toBe("bob (ab12)");
  });

  it("counts up when there is no fingerprint, or its suffix is taken too", () => {
    expect(uniqueName("Bob", skeletons("Bob"))).toBe("Bob 2");
    expect(uniqueName("Bob", skeletons("Bob", "Bob (ab12)"), "ab12")).toBe("Bob 2");
    expect(uniqueName("Bob", skeletons("Bob", "Bob 2", "Bob 3"))).toBe("Bob 4");
  });

  it("stays within the longest name, counting characters, not UTF-16 units", () => {
    const long = "\u{1F600}".repeat(MAX_NAME_LENGTH);
    const named = uniqueName(long, skeletons(long), "ab12");
    expect([...named].length).toBe(MAX_NAME_LENGTH);
    expect(named.endsWith(" (ab12)")).toBe(true);
  });
});

describe("Contacts", () => {
  it("finds a contact by exact name, else by a case-insensitive match only when it is unique", () => {
    const { store, ctx } = harness();
    const contacts = new Contacts(ctx, store.tables.contacts);
    const bob = contacts.put(null, contactRecord("Bob"));
    contacts.put(null, contactRecord("BOB"));
    const ann = contacts.put(null, contactRecord("Ann"));
    expect(contacts.find("Bob").id).toBe(bob);
    expect(contacts.find("ann").id).toBe(ann);
    expect(() => contacts.find("bob")).toThrow(/no contact named "bob"/);
  });

  it("refuses a rename to another contact's name or a look-alike of it, and changes nothing", () => {
    const { store, ctx } = harness();
    const contacts = new Contacts(ctx, store.tables.contacts);
    contacts.put(null, contactRecord("Bob"));
    const ann = contacts.put(null, contactRecord("Ann", { nameSource: "peer" }));
    expect(() => contacts.rename("Ann", "bob")).toThrow(/already called "bob"/);
    expect(() => contacts.rename("Ann", "B\u043eb")).toThrow(
      /looks the same as another contact's name, "Bob"/,
    );
    expect(contacts.get(ann)?.name).toBe("Ann");
    expect(contacts.rename("Ann", "Anna")).toBe("Anna");
    expect(contacts.get(ann)).toMatchObject({ name: "Anna", nameSource: "user" });
  });

  it("confirms a key only with the safety number of the key held now", () => {
    const { store, ctx } = harness();
    const contacts = new Contacts(ctx, store.tables.contacts);
    const id = contacts.put(null, contactRecord("Bob", { keyChanged: true }));
    const { safetyNumber, compact } = contacts.safety("Bob");
    const wrong = safetyNumber.replace(/^\d/, (d) => String((Number(d) + 1) % 10));
    expect(contacts.matchesSafety("Bob", wrong)).toBe(false);
    expect(() => contacts.confirm("Bob", wrong)).toThrow(/does not match Bob's key/);
    expect(contacts.get(id)).toMatchObject({ verified: false, keyChanged: true });
    expect(contacts.matchesSafety("Bob", compact)).toBe(true);
    contacts.confirm("Bob", compact);
    expect(contacts.get(id)).toMatchObject({ verified: true, keyChanged: false });
  });

  it("names a new contact uniquely among the others, but not against itself", () => {
    const { store, ctx } = harness();
    const contacts = new Contacts(ctx, store.tables.contacts);
    const bob = contacts.put(null, contactRecord("Bob"));
    expect(contacts.uniqueName("bob")).toBe("bob 2");
    expect(contacts.uniqueName("bob", bob)).toBe("bob");
    expect(contacts.lookAlike("B\u043eb")?.name).toBe("Bob");
    expect(contacts.lookAlike("B\u043eb", bob)).toBeUndefined();
  });

  it("shows a contact with its outbox count and its identity's fingerprint", () => {
    const c = contactRecord("Bob", { unread: 2, lastActivity: 5 });
    const view = contactView(c, 3);
    expect(view).toMatchObject({
      contact: "Bob",
      unread: 2,
      lastActivity: 5,
      outbox: 3,
      relay: c.outbox.relay,
    });
    expect(view.fingerprint).toMatch(/^[0-9a-f ]+$/);
  });
});
