// Follows protos/API.md step by step against a running drive and checks what a
// client relies on at each step; exits 1 on any mismatch. tests/test_api_guide.py
// runs it:
//
//   DRIVE_PASSWORD=… INTRUDER_PASSWORD=… node guide.mjs --metad HOST:PORT [--ca FILE] \
//     --user NAME --write FILE [--shared FOLDER] [--read FILE] [--intruder NAME]
//
// NAME signs in and writes a new file (two revisions) into their root, or into
// FOLDER that another user shared with them (write role), reads it back and
// watches the journal; with --read, it first reads that file of the folder.
// With --intruder, INTRUDER (another user), and callers with no or a forged
// token, then try to read and claim NAME's blocks and must be refused.
// Prints one JSON object on stdout (what was read, written and refused).

import { createHash, randomBytes, randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { DEVICE, Drive, blockHash, refinement, status, unary } from "./drive.mjs";

const MiB = 1024 * 1024;
const STATUS_NAME = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name]));

function say(line) {
  process.stderr.write(`guide: ${line}\n`);
}

function check(holds, what) {
  if (!holds) throw new Error(`mismatch: ${what}`);
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");

/** The error a call that must fail failed with; a mismatch if it succeeded or failed otherwise. */
async function refused(what, promise, code) {
  try {
    await promise;
  } catch (error) {
    check(
      error.code === code,
      `${what}: expected ${STATUS_NAME[code]}, got ${STATUS_NAME[error.code]} (${error.details})`,
    );
    say(`${what}: ${STATUS_NAME[code]} (${error.details})`);
    return error;
  }
  throw new Error(`mismatch: ${what} was not refused`);
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      metad: { type: "string" },
      ca: { type: "string" },
      user: { type: "string" },
      shared: { type: "string" },
      read: { type: "string" },
      write: { type: "string" },
      intruder: { type: "string" },
    },
  });
  const drive = new Drive(args.metad, args.ca);
  try {
    return await follow(drive, args);
  } finally {
    drive.close();
  }
}

async function follow(drive, args) {
  // 1. Where to connect.
  const info = await drive.open();
  check(/^[0-9a-f]{32}$/.test(info.drive_id), `drive id ${info.drive_id}`);
  say(`drive ${info.drive_id}, metad ${info.version}, blockd at ${drive.blockdAddress}`);

  // 2. Sign in, and renew the token.
  const me = await drive.signIn(args.user, process.env.DRIVE_PASSWORD);
  check(me.user.name === args.user, `signed in as ${me.user.name}`);
  check(me.expires > Date.now() / 1000, "token expires in the future");
  await me.renew();
  check((await unary(drive.accounts, "WhoAmI", {}, me.token)).name === args.user, "renewed token");

  // 3. Listing: the own root, and the folder shared with us (if --shared).
  const root = await me.meta("GetRoot", {});
  check(root.id === me.user.root_id, "GetRoot is the root SignIn named");
  const ownEntries = await me.list(root.id);
  say(`root holds ${ownEntries.length} entries`);
  let folder = root;
  if (args.shared) {
    const shares = (await me.meta("ListSharedWithMe", {})).shares;
    const share = shares.find((s) => s.node.name === args.shared);
    check(share !== undefined, `${args.shared} is shared with ${args.user}`);
    check(share.role === "ROLE_WRITE", `role ${share.role}`);
    folder = share.node;
    say(`${args.shared} is shared by ${share.owner_name}`);
  }

  // 4. Reading a file (if --read): GetRevision, then Download with the grants, BLAKE3 checked.
  let read;
  if (args.read) {
    const entries = await me.list(folder.id);
    const listed = entries.find((e) => e.name === args.read);
    check(listed?.kind === "NODE_KIND_FILE", `${args.read} listed among ${entries.length}`);
    const looked = await me.meta("Lookup", { parent_id: folder.id, name: args.read });
    check(looked.id === listed.id, "Lookup finds the listed entry");
    read = await me.read(listed.id);
    check(read.content.length === Number(listed.size), "read as many bytes as the file holds");
    check(read.revision.blocks.length >= 2, "a file of several blocks");
    say(`read ${args.read}: ${read.content.length} bytes in ${read.revision.blocks.length} blocks`);
  }

  // 5. Writing a file: CreateFile, then upload + commit; then an edit and a stale commit.
  const head = (await me.meta("GetJournalHead", {})).sequence; // for step 6
  const created = await me.meta("CreateFile", {
    parent_id: folder.id,
    name: args.write,
    mode: 0o644,
    device: DEVICE,
    request_id: randomUUID(),
  });
  check(created.revision === "1" && created.size === "0", "a new file is revision 1, empty");
  const first = randomBytes(5 * MiB + 12345);
  const v2 = await me.write(created.id, created.revision, first);
  check(v2.sent.length === v2.blocks.length && v2.blocks.length === 6, "all new blocks sent");
  check(v2.node.size === String(first.length), `committed size ${v2.node.size}`);
  // A retry of the same change (same request id) is answered as the first time.
  const retried = await me.meta("CommitRevision", v2.request);
  check(retried.revision === v2.node.revision, "a retried commit is applied once");
  // An edit: only the blocks blockd does not know we hold go up again.
  const edited = Buffer.concat([first, randomBytes(MiB)]);
  const v3 = await me.write(created.id, v2.node.revision, edited);
  const before = new Set(v2.blocks.map((b) => b.hash.toString("hex")));
  const fresh = v3.blocks.filter((b) => !before.has(b.hash.toString("hex")));
  check(v3.sent.length === fresh.length && fresh.length === 2, `sent ${v3.sent.length} blocks`);
  const stale = await refused(
    "a commit on a stale base revision",
    me.meta("CommitRevision", me.commitRequest(created.id, v2.node.revision, v3.blocks)),
    status.ABORTED,
  );
  const { currentRevision } = refinement(stale);
  check(currentRevision === v3.node.revision, `drive-current-revision ${currentRevision}`);
  const back = await me.read(created.id);
  check(back.content.equals(edited), "the written file reads back byte for byte");
  say(`wrote ${args.write}: revisions ${v2.node.revision} and ${v3.node.revision}`);

  // 6. Watching: the journal from before our writes on shows our commits.
  const seen = await journalEdits(me, head, created.id, v3.node.revision);
  check(seen.join() === [v2.node.revision, v3.node.revision].join(), `journal saw ${seen}`);

  return {
    drive_id: info.drive_id,
    read: read && {
      name: args.read,
      size: read.content.length,
      blocks: read.revision.blocks.length,
      sha256: sha256(read.content),
      blake3: blockHash(read.content).toString("hex"),
    },
    wrote: {
      name: args.write,
      node_id: created.id,
      revision: v3.node.revision,
      size: edited.length,
      sha256: sha256(edited),
      blocks_sent: [v2.sent.length, v3.sent.length],
    },
    refused:
      args.intruder &&
      (await intrude(drive, args, created.id, back.revision, v3.blocks, me.receipts)),
  };
}

/** Revisions the journal reports EDITED for nodeId after sequence head, until revision last. */
async function journalEdits(session, head, nodeId, last) {
  const call = session.subscribe(head, 60);
  const revisions = [];
  try {
    for await (const event of call) {
      if (event.kind !== "CHANGE_KIND_EDITED" || event.node_id !== nodeId) continue;
      revisions.push(event.revision);
      if (event.revision === last) break;
    }
  } finally {
    call.cancel();
  }
  return revisions;
}

/** Another user, and nobody at all, showing the first user's proofs: every step refused. */
async function intrude(drive, args, nodeId, revision, blocks, receipts) {
  const results = {};
  const note = (what, error) => {
    results[what] = {
      code: STATUS_NAME[error.code],
      reason: refinement(error).reason ?? "",
      details: error.details,
    };
  };
  const unauthenticated = status.UNAUTHENTICATED;
  const getRoot = (token) => unary(drive.metadata, "GetRoot", {}, token);
  note("no_token", await refused("a call without a token", getRoot(""), unauthenticated));
  const forged = "drive1.eyJzdWIiOjF9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  note("forged_token", await refused("a forged token", getRoot(forged), unauthenticated));
  const intruder = await drive.signIn(args.intruder, process.env.INTRUDER_PASSWORD);
  note(
    "their_revision",
    await refused(
      "another user's revision",
      intruder.meta("GetRevision", { node_id: nodeId, number: 0 }),
      status.NOT_FOUND,
    ),
  );
  note(
    "their_grants",
    await refused(
      "a download with another user's grants",
      intruder.download(revision),
      status.PERMISSION_DENIED,
    ),
  );
  // Knowing the hashes (and holding the grants) does not tell whether blockd has them.
  const asked = await unary(
    drive.blocks,
    "FindMissing",
    {
      hashes: revision.blocks.map((b) => b.hash),
      grants: revision.blocks.map((b) => ({
        grant: b.grant,
        expires_s: revision.grants_expire_s,
        issued_ms: revision.grants_issued_ms,
      })),
    },
    intruder.token,
  );
  check(asked.missing.length === revision.blocks.length, "FindMissing tells an intruder nothing");
  // Nor may they claim the blocks in a commit of their own, with or without the receipts.
  const root = await intruder.meta("GetRoot", {});
  const theirs = await intruder.meta("CreateFile", {
    parent_id: root.id,
    name: "claimed.bin",
    mode: 0o600,
    device: DEVICE,
    request_id: randomUUID(),
  });
  for (const [hash, receipt] of receipts) intruder.receipts.set(hash, receipt);
  note(
    "their_receipts",
    await refused(
      "a commit naming another user's blocks with their receipts",
      intruder.meta("CommitRevision", intruder.commitRequest(theirs.id, theirs.revision, blocks)),
      status.PERMISSION_DENIED,
    ),
  );
  check(results.their_receipts.reason === "unproven-blocks", "reason unproven-blocks");
  return results;
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  },
  (error) => {
    process.stderr.write(`guide: ${error.details ?? error.message}\n`);
    process.exitCode = 1;
  },
);
