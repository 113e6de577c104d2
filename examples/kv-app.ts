/**
 * A small task board on the DB: the patterns most apps need from a sorted key-value store.
 *
 * - records as msgpack values (the default encoding: objects, numbers, strings, Dates);
 * - sortable ids (zero-padded counters), so key order is creation order;
 * - secondary indexes as key prefixes (`idx:list:<list>:<id>`, `idx:owner:<owner>:<id>`), read
 *   with range queries (`gt` / `lt` around the prefix);
 * - an atomic batch that moves a task between lists: record and both index entries change
 *   together, or not at all, even across a crash;
 * - sessions with a TTL, which read as absent once expired;
 * - reopening the directory, flush, compaction and stats.
 *
 * Run: npx tsx examples/kv-app.ts [dir]   (a fresh temp dir, removed at the end, unless a new or
 * empty dir to keep the data in is given)
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DB, type BatchOperation } from '../src/index.js';

type List = 'inbox' | 'doing' | 'done';

interface Task {
  id: string;
  title: string;
  owner: string;
  list: List;
  created: Date;
  tags: string[];
}

interface User {
  name: string;
  email: string;
}

interface Session {
  user: string;
  createdAt: Date;
}

type Value = Task | User | Session | number;

/**
 * The range of keys that start with `prefix` (which ends in ':'): greater than the prefix, less
 * than the prefix with its last character bumped (':' + 1 = ';'). Keys order bytewise.
 */
const prefixRange = (prefix: string): { gt: string; lt: string } => ({
  gt: prefix,
  lt: prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1),
});

class TaskBoard {
  private constructor(private readonly db: DB<string, Value>) {}

  static async open(dir: string): Promise<TaskBoard> {
    return new TaskBoard(await DB.open<string, Value>(dir));
  }

  close(): Promise<void> {
    return this.db.close();
  }

  get raw(): DB<string, Value> {
    return this.db;
  }

  async addUser(id: string, user: User): Promise<void> {
    await this.db.put(`user:${id}`, user);
  }

  /** A new task: the record, its two index entries and the id counter, in one atomic batch. */
  async addTask(title: string, owner: string, tags: string[] = []): Promise<Task> {
    // Single writer in this example, so read-increment-write of the counter is safe.
    const next = ((await this.db.get('meta:nextTaskId')) as number | undefined) ?? 1;
    const id = String(next).padStart(6, '0');
    const task: Task = { id, title, owner, list: 'inbox', created: new Date(), tags };
    await this.db.batch([
      { type: 'put', key: `task:${id}`, value: task },
      { type: 'put', key: `idx:list:inbox:${id}`, value: 1 },
      { type: 'put', key: `idx:owner:${owner}:${id}`, value: 1 },
      { type: 'put', key: 'meta:nextTaskId', value: next + 1 },
    ]);
    return task;
  }

  async task(id: string): Promise<Task | undefined> {
    return (await this.db.get(`task:${id}`)) as Task | undefined;
  }

  /** Ids in an index, in key (= creation) order, by a prefix range query. */
  async idsByPrefix(prefix: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const [key] of this.db.iterator(prefixRange(prefix))) ids.push(key.slice(prefix.length));
    return ids;
  }

  async tasksIn(list: List): Promise<Task[]> {
    const out: Task[] = [];
    for (const id of await this.idsByPrefix(`idx:list:${list}:`)) out.push((await this.task(id))!);
    return out;
  }

  tasksOf(owner: string): Promise<string[]> {
    return this.idsByPrefix(`idx:owner:${owner}:`);
  }

  /** Moves a task to another list: the record and both index entries change atomically. */
  async move(id: string, to: List): Promise<void> {
    const task = await this.task(id);
    if (!task) throw new Error(`no task ${id}`);
    if (task.list === to) return;
    const ops: BatchOperation<string, Value>[] = [
      { type: 'del', key: `idx:list:${task.list}:${id}` },
      { type: 'put', key: `idx:list:${to}:${id}`, value: 1 },
      { type: 'put', key: `task:${id}`, value: { ...task, list: to } },
    ];
    await this.db.batch(ops, { sync: true }); // on stable storage before it resolves
  }

  async remove(id: string): Promise<void> {
    const task = await this.task(id);
    if (!task) return;
    await this.db.batch([
      { type: 'del', key: `task:${id}` },
      { type: 'del', key: `idx:list:${task.list}:${id}` },
      { type: 'del', key: `idx:owner:${task.owner}:${id}` },
    ]);
  }

  /** Tasks created after `afterId` (exclusive), oldest first, at most `limit`: a page. */
  async page(afterId: string, limit: number): Promise<Task[]> {
    const out: Task[] = [];
    for await (const [, v] of this.db.iterator({ gt: `task:${afterId}`, lt: prefixRange('task:').lt, limit })) out.push(v as Task);
    return out;
  }

  /** The newest `n` tasks: a reverse range query with a limit. */
  async latest(n: number): Promise<Task[]> {
    const out: Task[] = [];
    for await (const [, v] of this.db.iterator({ ...prefixRange('task:'), reverse: true, limit: n })) out.push(v as Task);
    return out;
  }

  async login(user: string, ttlMs: number): Promise<string> {
    const token = randomBytes(8).toString('hex');
    await this.db.put(`session:${token}`, { user, createdAt: new Date() }, { ttlMs });
    return token;
  }

  async session(token: string): Promise<Session | undefined> {
    return (await this.db.get(`session:${token}`)) as Session | undefined;
  }
}

const show = (tasks: Task[]): string =>
  tasks.map((t) => `#${t.id} ${JSON.stringify(t.title)} (${t.owner}, ${t.list})`).join('\n    ') || '(none)';

async function main(dir: string): Promise<void> {
  console.log(`sediment task board, data in ${dir}\n`);
  let board = await TaskBoard.open(dir);

  await board.addUser('ada', { name: 'Ada Lovelace', email: 'ada@example.org' });
  await board.addUser('alan', { name: 'Alan Turing', email: 'alan@example.org' });
  const titles: [string, string, string[]][] = [
    ['Write the release notes', 'ada', ['docs']],
    ['Fix the flaky crash test', 'alan', ['bug', 'tests']],
    ['Benchmark against LevelDB', 'ada', ['perf']],
    ['Review the compaction PR', 'alan', ['review']],
    ['Plan the 0.2 milestone', 'ada', []],
    ['Answer the mailing list', 'alan', []],
  ];
  for (const [title, owner, tags] of titles) await board.addTask(title, owner, tags);
  console.log(
    `added ${titles.length} tasks; the inbox (a range query over the idx:list:inbox: prefix):\n    ${show(await board.tasksIn('inbox'))}`,
  );

  await board.move('000002', 'doing');
  await board.move('000004', 'doing');
  await board.move('000001', 'done');
  console.log(`\nmoved #000002 and #000004 to doing, #000001 to done (each move one atomic batch, synced):`);
  for (const list of ['inbox', 'doing', 'done'] as const)
    console.log(`  ${list.padEnd(5)}: ${(await board.idsByPrefix(`idx:list:${list}:`)).join(', ')}`);
  console.log(`  ada's tasks (idx:owner:ada:): ${(await board.tasksOf('ada')).join(', ')}`);

  console.log(`\npage of 2 tasks after #000002 (gt 'task:000002'):\n    ${show(await board.page('000002', 2))}`);
  console.log(`latest 3 tasks (reverse, limit 3):\n    ${show(await board.latest(3))}`);

  await board.remove('000006');
  console.log(
    `\nremoved #000006: task record ${(await board.task('000006')) === undefined ? 'gone' : 'still there!'}, alan's tasks now ${(await board.tasksOf('alan')).join(', ')}`,
  );

  // Sessions expire on their own: no sweeper needed, reads just stop seeing them.
  const token = await board.login('ada', 300);
  console.log(`\nsession ${token} for ada (ttl 300 ms): ${JSON.stringify(await board.session(token))}`);
  await new Promise((r) => setTimeout(r, 400));
  console.log(`after 400 ms: ${JSON.stringify(await board.session(token)) ?? 'undefined (expired)'}`);

  // Everything is in the WAL already; close and reopen to see it come back.
  await board.close();
  board = await TaskBoard.open(dir);
  const recovery = board.raw.stats().walRecovery;
  console.log(
    `\nclosed and reopened: ${recovery.validRecords} WAL records replayed; doing = ${(await board.idsByPrefix('idx:list:doing:')).join(', ')}`,
  );

  // Some volume, then flush the memtable to a table and compact: the same answers come from disk.
  for (let i = 0; i < 500; i++) await board.addTask(`Bulk task ${i}`, i % 2 === 0 ? 'ada' : 'alan', ['bulk']);
  await board.raw.flush();
  await board.raw.compact();
  const stats = board.raw.stats();
  console.log(
    `\nadded 500 more, flushed and compacted: tables per level ${JSON.stringify(stats.levels.map((l) => l.tables))}, ` +
      `${stats.flushes} flush(es), ${stats.compactions} compaction(s)`,
  );
  console.log(
    `  inbox now holds ${(await board.idsByPrefix('idx:list:inbox:')).length} tasks, ada owns ${(await board.tasksOf('ada')).length}`,
  );
  console.log(`  #000004 read back from the table: ${JSON.stringify(await board.task('000004'))}`);

  // Raw access: how the keys are laid out (one full scan, in key order).
  const layout = new Map<string, number>();
  for await (const [k] of board.raw.iterator()) {
    const kind = k.startsWith('idx:') ? `${k.split(':').slice(0, 3).join(':')}:*` : `${k.split(':')[0]}:*`;
    layout.set(kind, (layout.get(kind) ?? 0) + 1);
  }
  console.log(`\nkey layout (a full scan): ${[...layout].map(([kind, n]) => `${kind} ${n}`).join(', ')}`);
  await board.close();
}

const keep = process.argv[2] !== undefined;
if (keep && fs.existsSync(process.argv[2]!) && fs.readdirSync(process.argv[2]!).length > 0) {
  console.error(`${process.argv[2]} is not empty: pass a new or empty directory (the demo starts from an empty database)`);
  process.exit(2);
}
const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-kv-app-'));
try {
  await main(dir);
} finally {
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}
