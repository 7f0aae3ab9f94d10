// The drivefs gRPC API from Node.js, exactly as protos/API.md describes it: the
// .proto files loaded as they are, the token on every call, unary calls as
// promises, and the block streams (Upload, Download) with BLAKE3 checks.
// It uses no drivefs code, only protos/drive/v1/*.proto.

import { once } from "node:events";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { blake3 } from "@noble/hashes/blake3";

const PROTOS = fileURLToPath(new URL("../../protos", import.meta.url));
const MiB = 1024 * 1024;
// A block is at most 16 MiB; the daemons take messages up to 64 MiB. gRPC's
// usual 4 MiB default would refuse a large block.
const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": 64 * MiB,
  "grpc.max_send_message_length": 64 * MiB,
};
const UNARY_SECONDS = 30;
const STREAM_SECONDS = 600;
export const DEVICE = "api-guide-node"; // how the file's history names this client

const definition = protoLoader.loadSync(
  ["drive/v1/accounts.proto", "drive/v1/metadata.proto", "drive/v1/blocks.proto"],
  // int64 as decimal strings: nanosecond times do not fit a JS number.
  {
    includeDirs: [PROTOS],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  },
);
const v1 = grpc.loadPackageDefinition(definition).drive.v1;

export const status = grpc.status;

/** BLAKE3-256 of data: a block's name. */
export function blockHash(data) {
  return Buffer.from(blake3(data));
}

/** The "drive-error" reason and "drive-current-revision" of a failed call, if it has them. */
export function refinement(error) {
  const trailer = (key) => error.metadata?.get(key)?.[0]?.toString();
  return { reason: trailer("drive-error"), currentRevision: trailer("drive-current-revision") };
}

function deadline(seconds) {
  return { deadline: Date.now() + seconds * 1000 };
}

function signed(token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** blockd's address as GetDrive gives it, with metad's host where it names none. */
function reachable(advertised, metadAddress) {
  if (!advertised) throw new Error("metad does not know where blockd is: ask the drive's operator");
  const colon = advertised.lastIndexOf(":");
  const host = advertised.slice(0, colon).replace(/^\[|\]$/g, "");
  if (host && host !== "0.0.0.0" && host !== "::") return advertised;
  return metadAddress.slice(0, metadAddress.lastIndexOf(":")) + advertised.slice(colon);
}

/** Cuts data into blocks of at most size bytes (any cut is valid; see API.md). */
export function cut(data, size = MiB) {
  const blocks = [];
  for (let offset = 0; offset < data.length; offset += size) {
    const piece = data.subarray(offset, offset + size);
    blocks.push({ hash: blockHash(piece), offset, size: piece.length, data: piece });
  }
  return blocks;
}

/** A drive reached at metad's address: plain text on loopback, or TLS with the drive's CA. */
export class Drive {
  constructor(metadAddress, caFile) {
    this.metadAddress = metadAddress;
    this.credentials = caFile
      ? grpc.credentials.createSsl(readFileSync(caFile))
      : grpc.credentials.createInsecure();
    // A drive's own CA signs server certificates for the name "drivefs".
    this.options = caFile
      ? { ...CHANNEL_OPTIONS, "grpc.ssl_target_name_override": "drivefs" }
      : CHANNEL_OPTIONS;
    this.accounts = new v1.Accounts(metadAddress, this.credentials, this.options);
    this.metadata = new v1.Metadata(metadAddress, this.credentials, this.options);
  }

  /** Step 1: which drive this is and where its blockd is (open: no token). */
  async open() {
    this.info = await unary(this.accounts, "GetDrive", {}, "");
    this.blockdAddress = reachable(this.info.blockd_address, this.metadAddress);
    this.blocks = new v1.Blocks(this.blockdAddress, this.credentials, this.options);
    return this.info;
  }

  /** Step 2: a session of one user. */
  async signIn(name, password) {
    const signedIn = await unary(this.accounts, "SignIn", { name, password }, "");
    return new Session(this, signedIn);
  }

  close() {
    for (const client of [this.accounts, this.metadata, this.blocks]) client?.close();
  }
}

/** One call that answers once, as a promise. */
export function unary(client, method, request, token) {
  return new Promise((resolve, reject) => {
    client[method](request, signed(token), deadline(UNARY_SECONDS), (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
  });
}

/** What one signed-in user does: every call carries their token. */
export class Session {
  constructor(drive, signedIn) {
    this.drive = drive;
    this.token = signedIn.token;
    this.expires = Number(signedIn.expires_s);
    this.user = signedIn.user;
    this.receipts = new Map(); // hash hex -> Receipt: proof we uploaded it, for commits
  }

  meta(method, request) {
    return unary(this.drive.metadata, method, request, this.token);
  }

  /** A fresh token before this one expires (RenewToken needs a valid one). */
  async renew() {
    const renewed = await unary(this.drive.accounts, "RenewToken", {}, this.token);
    this.token = renewed.token;
    this.expires = Number(renewed.expires_s);
    return renewed;
  }

  /** Step 3: every entry of a folder, page by page. */
  async list(folderId) {
    const entries = [];
    let after = "0";
    for (;;) {
      const page = await this.meta("ListDirectory", { node_id: folderId, after_id: after });
      entries.push(...page.entries);
      if (!page.more) return entries;
      after = page.entries.at(-1).entry_id;
    }
  }

  /** Step 4: a file's current content, checked block by block. */
  async read(nodeId) {
    const revision = await this.meta("GetRevision", { node_id: nodeId, number: 0 });
    return { revision, content: await this.download(revision) };
  }

  /** The content of a revision: Download calls of a few blocks each, several at once. */
  async download(revision, { blocksPerCall = 4, callsAtOnce = 4 } = {}) {
    const content = Buffer.alloc(Number(revision.size));
    const groups = [];
    for (let i = 0; i < revision.blocks.length; i += blocksPerCall) {
      groups.push(revision.blocks.slice(i, i + blocksPerCall));
    }
    const fetchGroup = async (group) => {
      const grants = group.map((ref) => ({
        grant: ref.grant,
        expires_s: revision.grants_expire_s,
        issued_ms: revision.grants_issued_ms,
      }));
      const hashes = group.map((ref) => ref.hash);
      const call = this.drive.blocks.Download(
        { hashes, grants },
        signed(this.token),
        deadline(STREAM_SECONDS),
      );
      let index = 0;
      for await (const block of call) {
        const ref = group[index++];
        if (!block.hash.equals(ref.hash) || !blockHash(block.data).equals(ref.hash)) {
          throw new Error(`block at offset ${ref.offset} arrived damaged`);
        }
        block.data.copy(content, Number(ref.offset));
      }
      if (index !== group.length) throw new Error(`${group.length - index} blocks never came`);
    };
    await inParallel(groups, callsAtOnce, fetchGroup);
    return content;
  }

  /** Step 5a: which of these blocks we must send (those blockd will not say we hold). */
  async findMissing(blocks) {
    const none = { hash: Buffer.alloc(0), size: 0, mac: Buffer.alloc(0) };
    const receipts = blocks.map((b) => this.receipts.get(b.hash.toString("hex")) ?? none);
    const reply = await unary(
      this.drive.blocks,
      "FindMissing",
      { hashes: blocks.map((b) => b.hash), receipts },
      this.token,
    );
    const missing = new Set(reply.missing.map((h) => h.toString("hex")));
    return blocks.filter((b) => missing.has(b.hash.toString("hex")));
  }

  /** Step 5b: sends blocks in one stream; keeps the receipt blockd gives for each. */
  upload(blocks) {
    return new Promise((resolve, reject) => {
      const call = this.drive.blocks.Upload(
        signed(this.token),
        deadline(STREAM_SECONDS),
        (error, reply) => {
          if (error) return reject(error);
          for (const r of reply.receipts) this.receipts.set(r.hash.toString("hex"), r);
          resolve(reply);
        },
      );
      (async () => {
        for (const b of blocks) {
          if (!call.write({ hash: b.hash, data: b.data })) await once(call, "drain");
        }
        call.end();
      })().catch(reject);
    });
  }

  /** Step 5c: a commit of blocks as the file's next revision, if it is still at base.
   *  A retry sends this same request again (same request_id, same fields). */
  commitRequest(nodeId, baseRevision, blocks) {
    return {
      node_id: nodeId,
      base_revision: baseRevision,
      size: blocks.reduce((total, b) => total + b.size, 0),
      mtime_ns: String(BigInt(Date.now()) * 1_000_000n),
      blocks: blocks.map((b) => ({
        hash: b.hash,
        offset: b.offset,
        size: b.size,
        // No receipt is needed for a block a revision we may read already holds.
        receipt: this.receipts.get(b.hash.toString("hex"))?.mac ?? Buffer.alloc(0),
      })),
      device: DEVICE,
      request_id: randomUUID(),
    };
  }

  /** Step 5: writes data as the new content of a file at baseRevision. */
  async write(nodeId, baseRevision, data) {
    const blocks = cut(data);
    const missing = await this.findMissing(blocks);
    if (missing.length) await this.upload(missing);
    const request = this.commitRequest(nodeId, baseRevision, blocks);
    const node = await this.meta("CommitRevision", request);
    return { node, blocks, sent: missing, request };
  }

  /** Step 6: the journal after fromSequence, then live changes (call.cancel() stops it). */
  subscribe(fromSequence, seconds = STREAM_SECONDS) {
    const request = { from_sequence: fromSequence };
    return this.drive.metadata.Subscribe(request, signed(this.token), deadline(seconds));
  }
}

async function inParallel(items, width, work) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
