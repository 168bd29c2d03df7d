//! Deciding, before anything is unpickled, whether the pickle of a PyTorch checkpoint only
//! rebuilds tensors.
//!
//! A pickle is a program: `GLOBAL posix system` followed by `REDUCE` runs a shell command in
//! any reader that executes it. candle's reader does not execute code, but it accepts any
//! global name, so a file that would run code in Python would still "load" here and hide what
//! it is. We therefore walk the opcodes ourselves first, keeping an abstract stack (what kind
//! of value each slot holds, not the value), and refuse:
//!
//! - any global outside [`ALLOWED`], the names `torch.save(state_dict)` writes;
//! - calls (`REDUCE`) of anything but an allowed function, and `BUILD` of anything but an
//!   object such a call made;
//! - every other opcode that constructs objects (`INST`, `OBJ`, `NEWOBJ`, `EXT*`, ...);
//! - opcodes candle's reader does not know (later protocols, text forms), with a hint to
//!   re-save, after the whole pickle has been scanned for the worse findings above;
//! - values nested too deep or copied too often through the memo (candle's reader clones
//!   memo entries, so a few hundred bytes could otherwise ask for gigabytes).
//!
//! What passes is exactly the subset candle's `pickle::Stack` reads, so the scan also keeps
//! that reader away from malformed input (short reads, huge claimed lengths, empty stacks).

use std::collections::HashMap;
use std::fmt;

/// Why a pickle is refused; [`fmt::Display`] gives the message without the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It names (or calls) a global that is not a tensor-rebuilding one.
    Runs(String),
    /// It uses an opcode that constructs or calls something outside the allowlist.
    Code(&'static str),
    /// It uses an opcode the reader does not implement (a later protocol, a text form).
    Unsupported(&'static str),
    /// It is not a well-formed pickle.
    Malformed(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Runs(global) => {
                write!(f, "the pickle asks to run {global}; fairnc reads tensor data only, refusing it")
            }
            Refusal::Code(op) => write!(
                f,
                "the pickle constructs objects with opcode {op} beyond rebuilding tensors; fairnc reads tensor data only, refusing it"
            ),
            Refusal::Unsupported(op) => write!(
                f,
                "the pickle uses opcode {op}, which torch.save does not write for a state dict; \
                 re-save the weights with torch.save(model.state_dict(), path) or as safetensors"
            ),
            Refusal::Malformed(what) => write!(f, "not a valid pickle ({what})"),
        }
    }
}

/// A global the pickle may name, and whether it may be called.
struct Allowed {
    module: &'static str,
    name: &'static str,
    callable: bool,
}

const fn call(module: &'static str, name: &'static str) -> Allowed {
    Allowed { module, name, callable: true }
}

const fn name(module: &'static str, name: &'static str) -> Allowed {
    Allowed { module, name, callable: false }
}

/// What `torch.save` writes for a state dict (checked on files torch 2.15 makes: the first
/// three entries), plus `_rebuild_parameter` for dicts of `nn.Parameter`s (older trainers save
/// those). Storage classes are only named, in persistent ids, never called.
const ALLOWED: &[Allowed] = &[
    call("collections", "OrderedDict"),
    call("torch._utils", "_rebuild_tensor_v2"),
    name("torch", "FloatStorage"),
    call("torch._utils", "_rebuild_parameter"),
    name("torch", "HalfStorage"),
    name("torch", "BFloat16Storage"),
    name("torch", "DoubleStorage"),
    name("torch", "LongStorage"),
    name("torch", "IntStorage"),
    name("torch", "ShortStorage"),
    name("torch", "CharStorage"),
    name("torch", "ByteStorage"),
    name("torch", "BoolStorage"),
];

fn allowed(module: &[u8], name: &[u8]) -> Option<&'static Allowed> {
    ALLOWED.iter().find(|a| a.module.as_bytes() == module && a.name.as_bytes() == name)
}

/// `module.name` for a message: lossy UTF-8, control characters escaped, length bounded, so
/// that the error stays one printable line whatever the file holds.
fn dotted(module: &[u8], name: &[u8]) -> String {
    let clean = |b: &[u8]| {
        let s: String = String::from_utf8_lossy(b).escape_debug().collect();
        if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s }
    };
    format!("{}.{}", clean(module), clean(name))
}

/// What an abstract stack slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mark,
    Global(&'static Allowed),
    /// The result of calling an allowed function.
    Built,
    /// A literal or a container of values.
    Data,
}

impl fmt::Debug for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

impl PartialEq for Allowed {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Allowed {}

#[derive(Debug, Clone)]
struct Slot {
    kind: Kind,
    /// A short string literal's bytes: `STACK_GLOBAL` and messages need them.
    text: Option<Box<[u8]>>,
    /// Objects this value is made of, as candle's reader would hold them.
    nodes: u64,
    depth: u32,
}

impl Slot {
    fn of(kind: Kind) -> Self {
        Slot { kind, text: None, nodes: 1, depth: 1 }
    }

    fn text(bytes: &[u8]) -> Self {
        Slot { text: (bytes.len() <= 256).then(|| bytes.into()), ..Slot::of(Kind::Data) }
    }
}

/// Deeper values are refused: no state dict nests beyond ~6, and recursion over (or dropping
/// of) a very deep value would exhaust the stack.
const MAX_DEPTH: u32 = 100;

/// The abstract machine: stack, memo and the running count of objects the real reader would
/// allocate.
struct Machine {
    stack: Vec<Slot>,
    memo: HashMap<u64, Slot>,
    made: u64,
    budget: u64,
}

type Step<T = ()> = Result<T, Refusal>;

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed(what.into())
}

impl Machine {
    fn count(&mut self, nodes: u64) -> Step {
        self.made = self.made.saturating_add(nodes);
        if self.made > self.budget {
            return Err(malformed(format!("it builds more than {} objects through memo copies", self.budget)));
        }
        Ok(())
    }

    fn push(&mut self, slot: Slot) -> Step {
        self.count(1)?;
        if slot.depth > MAX_DEPTH {
            return Err(malformed(format!("values nested more than {MAX_DEPTH} deep")));
        }
        self.stack.push(slot);
        Ok(())
    }

    /// Pops one value (a mark is not a value).
    fn pop(&mut self) -> Step<Slot> {
        match self.stack.pop() {
            Some(s) if s.kind != Kind::Mark => Ok(s),
            _ => Err(malformed("an opcode pops a value from an empty stack")),
        }
    }

    /// Pops everything down to the topmost mark, and the mark.
    fn pop_mark(&mut self) -> Step<Vec<Slot>> {
        let at = self.stack.iter().rposition(|s| s.kind == Kind::Mark).ok_or_else(|| malformed("no MARK to pop to"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    /// A container (tuple, list, dict) of `items`.
    fn container(items: &[Slot]) -> Slot {
        Slot {
            kind: Kind::Data,
            text: None,
            nodes: items.iter().fold(1u64, |n, s| n.saturating_add(s.nodes)),
            depth: 1 + items.iter().map(|s| s.depth).max().unwrap_or(0),
        }
    }

    /// Adds items to the container on top (APPEND(S), SETITEM(S)). A class is no container:
    /// item assignment on it would call its metaclass.
    fn add_to_top(&mut self, items: &[Slot]) -> Step {
        let top = self.stack.last_mut().ok_or_else(|| malformed("an item is added to an empty stack"))?;
        match top.kind {
            Kind::Data | Kind::Built => {}
            Kind::Mark => return Err(malformed("an item is added to a MARK")),
            Kind::Global(_) => return Err(Refusal::Code("SETITEM/APPEND on a class")),
        }
        for s in items {
            top.nodes = top.nodes.saturating_add(s.nodes);
            top.depth = top.depth.max(1 + s.depth);
        }
        if top.depth > MAX_DEPTH {
            return Err(malformed(format!("values nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn memo_put(&mut self, id: u64) -> Step {
        let top =
            self.stack.last().filter(|s| s.kind != Kind::Mark).ok_or_else(|| malformed("PUT with nothing to store"))?;
        let top = top.clone();
        self.count(top.nodes)?;
        self.memo.insert(id, top);
        Ok(())
    }

    fn memo_get(&mut self, id: u64) -> Step {
        let slot =
            self.memo.get(&id).cloned().ok_or_else(|| malformed(format!("GET of memo entry {id}, never stored")))?;
        self.count(slot.nodes)?;
        self.stack.push(slot);
        Ok(())
    }

    /// GLOBAL / STACK_GLOBAL: an allowed name becomes a slot; any other is refused.
    fn global(&mut self, module: &[u8], name: &[u8]) -> Step {
        match allowed(module, name) {
            Some(a) => self.push(Slot::of(Kind::Global(a))),
            None => Err(Refusal::Runs(dotted(module, name))),
        }
    }

    /// REDUCE: the callable must be an allowed function.
    fn reduce(&mut self) -> Step {
        let _args = self.pop()?;
        let f = self.pop()?;
        match f.kind {
            Kind::Global(a) if a.callable => self.push(Slot::of(Kind::Built)),
            Kind::Global(a) => Err(Refusal::Runs(format!("{}.{}", a.module, a.name))),
            _ => Err(Refusal::Code("REDUCE of a value that is not an allowed function")),
        }
    }

    /// BUILD sets an object's state (`__setstate__` or its `__dict__`): only on an object an
    /// allowed call made, never on a class, whose attributes it would overwrite.
    fn build(&mut self) -> Step {
        let _state = self.pop()?;
        let obj = self.pop()?;
        match obj.kind {
            Kind::Built => self.push(obj),
            _ => Err(Refusal::Code("BUILD on something no allowed call made")),
        }
    }
}

/// Reads opcode arguments, refusing reads past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Step<&'a [u8]> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| malformed(format!("an argument at byte {} runs past the end", self.pos)))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn uint(&mut self, width: u64) -> Step<u64> {
        Ok(self.take(width)?.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    }

    fn line(&mut self) -> Step<&'a [u8]> {
        let rest = &self.bytes[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| malformed("a text argument has no newline"))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }
}

/// Scans a whole pickle; `Ok` when candle's reader may read it and it only rebuilds tensors.
pub fn check(pickle: &[u8]) -> Result<(), Refusal> {
    let mut m = Machine {
        stack: Vec::new(),
        memo: HashMap::new(),
        made: 0,
        budget: 1_000_000u64.saturating_add(16u64.saturating_mul(pickle.len() as u64)),
    };
    let mut c = Cursor { bytes: pickle, pos: 0 };
    // An opcode candle cannot read is reported only after the rest is scanned: a pickle
    // that also calls `os.system` must be called out for that.
    let mut unsupported: Option<&'static str> = None;
    let mut later = |op: &'static str| {
        unsupported.get_or_insert(op);
    };
    loop {
        let at = c.pos;
        let op = *c.take(1)?.first().ok_or_else(|| malformed("empty"))?;
        match op {
            0x80 => {
                c.take(1)?; // PROTO
            }
            b'.' => break, // STOP
            b'(' => m.push(Slot::of(Kind::Mark))?,
            // Numbers, None, booleans.
            b'J' | b'K' | b'M' | b'G' => {
                c.take(match op {
                    b'J' => 4,
                    b'K' => 1,
                    b'M' => 2,
                    _ => 8,
                })?;
                m.push(Slot::of(Kind::Data))?;
            }
            0x8a => {
                let n = c.uint(1)?; // LONG1
                c.take(n)?;
                m.push(Slot::of(Kind::Data))?;
            }
            b'N' | 0x88 | 0x89 => m.push(Slot::of(Kind::Data))?,
            b'X' => {
                let n = c.uint(4)?; // BINUNICODE
                let s = c.take(n)?;
                m.push(Slot::text(s))?;
            }
            // Strings and bytes candle does not read.
            0x8c | 0x8d | b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 | 0x8b => {
                let (width, what) = match op {
                    0x8c => (1, "SHORT_BINUNICODE"),
                    0x8d => (8, "BINUNICODE8"),
                    b'T' => (4, "BINSTRING"),
                    b'U' => (1, "SHORT_BINSTRING"),
                    b'B' => (4, "BINBYTES"),
                    b'C' => (1, "SHORT_BINBYTES"),
                    0x8e => (8, "BINBYTES8"),
                    0x96 => (8, "BYTEARRAY8"),
                    _ => (4, "LONG4"),
                };
                let n = c.uint(width)?;
                let s = c.take(n)?;
                m.push(Slot::text(s))?;
                later(what);
            }
            b'I' | b'L' | b'F' | b'S' | b'V' => {
                let s = c.line()?;
                m.push(Slot::text(s))?;
                later(match op {
                    b'I' => "INT",
                    b'L' => "LONG",
                    b'F' => "FLOAT",
                    b'S' => "STRING",
                    _ => "UNICODE",
                });
            }
            // Containers.
            b')' | b']' | b'}' => m.push(Slot::of(Kind::Data))?,
            0x8f => {
                m.push(Slot::of(Kind::Data))?;
                later("EMPTY_SET");
            }
            b't' => {
                let items = m.pop_mark()?;
                m.push(Machine::container(&items))?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let items = (0..n).map(|_| m.pop()).collect::<Step<Vec<_>>>()?;
                m.push(Machine::container(&items))?;
            }
            b'l' | b'd' | 0x91 => {
                let items = m.pop_mark()?;
                m.push(Machine::container(&items))?;
                later(match op {
                    b'l' => "LIST",
                    b'd' => "DICT",
                    _ => "FROZENSET",
                });
            }
            b'a' => {
                let v = m.pop()?;
                m.add_to_top(&[v])?;
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.add_to_top(&[k, v])?;
            }
            b'e' | b'u' | 0x90 => {
                let items = m.pop_mark()?;
                if op == b'u' && items.len() % 2 != 0 {
                    return Err(malformed("SETITEMS with an odd number of items"));
                }
                m.add_to_top(&items)?;
                if op == 0x90 {
                    later("ADDITEMS");
                }
            }
            // Stack manipulation candle does not read.
            b'0' => {
                m.stack.pop().ok_or_else(|| malformed("POP of an empty stack"))?;
                later("POP");
            }
            b'2' => {
                let top = m.stack.last().cloned().ok_or_else(|| malformed("DUP of an empty stack"))?;
                m.count(top.nodes)?;
                m.stack.push(top);
                later("DUP");
            }
            b'1' => {
                m.pop_mark()?;
                later("POP_MARK");
            }
            // The memo.
            b'q' | b'r' => {
                let id = c.uint(if op == b'q' { 1 } else { 4 })?;
                m.memo_put(id)?;
            }
            b'h' | b'j' => {
                let id = c.uint(if op == b'h' { 1 } else { 4 })?;
                m.memo_get(id)?;
            }
            b'p' | b'g' => {
                let line = c.line()?;
                let id = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| malformed("PUT/GET with a non-numeric memo key"))?;
                if op == b'p' {
                    m.memo_put(id)?
                } else {
                    m.memo_get(id)?
                }
                later(if op == b'p' { "PUT" } else { "GET" });
            }
            0x94 => {
                let id = m.memo.len() as u64; // MEMOIZE
                m.memo_put(id)?;
                later("MEMOIZE");
            }
            0x95 => {
                c.take(8)?;
                later("FRAME");
            }
            // Names of code.
            b'c' => {
                let module = c.line()?;
                let name = c.line()?;
                m.global(module, name)?;
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (module.text, name.text) {
                    (Some(module), Some(name)) => m.global(&module, &name)?,
                    _ => return Err(Refusal::Code("STACK_GLOBAL of a computed name")),
                }
                later("STACK_GLOBAL");
            }
            b'i' => {
                let module = c.line()?;
                let name = c.line()?;
                return Err(match allowed(module, name) {
                    None => Refusal::Runs(dotted(module, name)),
                    Some(_) => Refusal::Code("INST"),
                });
            }
            // Calls.
            b'R' => m.reduce()?,
            b'b' => m.build()?,
            b'o' => return Err(Refusal::Code("OBJ")),
            0x81 => return Err(Refusal::Code("NEWOBJ")),
            0x92 => return Err(Refusal::Code("NEWOBJ_EX")),
            0x82..=0x84 => return Err(Refusal::Code("EXT (copyreg's extension registry)")),
            // torch's persistent ids: storages, which its loader maps to file entries.
            b'Q' => {
                m.pop()?;
                m.push(Slot::of(Kind::Data))?;
            }
            b'P' => {
                c.line()?;
                m.push(Slot::of(Kind::Data))?;
                later("PERSID");
            }
            0x97 | 0x98 => {
                if op == 0x97 {
                    m.push(Slot::of(Kind::Data))?;
                }
                later(if op == 0x97 { "NEXT_BUFFER" } else { "READONLY_BUFFER" });
            }
            other => return Err(malformed(format!("unknown opcode 0x{other:02x} at byte {at}"))),
        }
    }
    if m.stack.iter().all(|s| s.kind == Kind::Mark) {
        return Err(malformed("STOP with no value on the stack"));
    }
    match unsupported {
        Some(op) => Err(Refusal::Unsupported(op)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GLOBAL module name`.
    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((s.len() as u32).to_le_bytes());
        v.extend(s.as_bytes());
        v
    }

    fn pickle(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0x80, 2];
        for p in parts {
            v.extend_from_slice(p);
        }
        v.push(b'.');
        v
    }

    /// What torch.save writes for `{"w": tensor}`, with the memo use it makes.
    fn state_dict() -> Vec<u8> {
        let storage = [
            &b"(("[..],
            &unicode("storage"),
            &global("torch", "FloatStorage"),
            &unicode("0"),
            &unicode("cpu"),
            b"K\x04tQ",
        ]
        .concat();
        let tensor = [
            &global("torch._utils", "_rebuild_tensor_v2")[..],
            b"q\x02",
            &storage,
            b"K\x00K\x02K\x02\x86K\x02K\x01\x86\x89",
            &global("collections", "OrderedDict"),
            b")Rtq\x03R",
        ]
        .concat();
        pickle(&[&global("collections", "OrderedDict"), b"q\x00)Rq\x01(", &unicode("w"), &tensor, b"u}b"])
    }

    #[test]
    fn a_state_dict_as_torch_writes_it_passes() {
        check(&state_dict()).unwrap();
    }

    #[test]
    fn globals_outside_the_allowlist_are_refused_by_name() {
        let p = pickle(&[&global("posix", "system"), &unicode("echo hi"), b"\x85R"]);
        let e = check(&p).unwrap_err();
        assert_eq!(e, Refusal::Runs("posix.system".into()));
        assert_eq!(e.to_string(), "the pickle asks to run posix.system; fairnc reads tensor data only, refusing it");
        // Named even when only pushed, never called.
        assert_eq!(check(&pickle(&[&global("builtins", "eval")])).unwrap_err(), Refusal::Runs("builtins.eval".into()));
        // Protocol 4's STACK_GLOBAL builds the name from two strings; still named.
        let mut p = vec![0x80, 4, 0x8c, 8];
        p.extend(b"builtins");
        p.extend([0x8c, 4]);
        p.extend(b"eval");
        p.extend([0x93, b'.']);
        assert_eq!(check(&p).unwrap_err(), Refusal::Runs("builtins.eval".into()));
        // INST names its class inline.
        assert_eq!(check(&pickle(&[b"(", b"ios\nsystem\n"])).unwrap_err(), Refusal::Runs("os.system".into()));
        // A name that would break the one-line message is escaped.
        let e = check(&pickle(&[b"cposix\x1b[2J\nsys\ntem\n"])).unwrap_err();
        assert!(!e.to_string().contains('\n') && !e.to_string().contains('\x1b'), "{e}");
    }

    #[test]
    fn a_dangerous_global_is_reported_before_an_unsupported_opcode() {
        let p = pickle(&[b"\x95\x00\x00\x00\x00\x00\x00\x00\x00", &global("subprocess", "Popen")]);
        assert_eq!(check(&p).unwrap_err(), Refusal::Runs("subprocess.Popen".into()));
        let p = pickle(&[b"\x95\x00\x00\x00\x00\x00\x00\x00\x00N"]);
        assert_eq!(check(&p).unwrap_err(), Refusal::Unsupported("FRAME"));
    }

    #[test]
    fn calls_are_allowed_only_on_allowed_functions() {
        // A storage class is allowed as a name, not as something to call.
        let p = pickle(&[&global("torch", "FloatStorage"), b")R"]);
        assert_eq!(check(&p).unwrap_err(), Refusal::Runs("torch.FloatStorage".into()));
        // Calling the result of a call, or a literal.
        let p = pickle(&[&global("collections", "OrderedDict"), b")R)R"]);
        assert!(matches!(check(&p).unwrap_err(), Refusal::Code(_)));
        // BUILD on a class would overwrite its attributes.
        let p = pickle(&[&global("collections", "OrderedDict"), b"}b"]);
        assert!(matches!(check(&p).unwrap_err(), Refusal::Code(_)));
        for op in [&b"(o"[..], b")\x81", b"\x82\x01", b"))}\x92"] {
            let p = pickle(&[&global("collections", "OrderedDict"), op]);
            assert!(matches!(check(&p).unwrap_err(), Refusal::Code(_)), "{op:?}");
        }
    }

    #[test]
    fn malformed_pickles_are_refused_without_reading_past_the_end() {
        let good = state_dict();
        for n in 0..good.len() {
            assert!(check(&good[..n]).is_err(), "a pickle cut at {n} bytes passed");
        }
        // A string claiming 4 GiB in a few bytes.
        assert!(matches!(check(&pickle(&[b"X\xff\xff\xff\xff"])).unwrap_err(), Refusal::Malformed(_)));
        assert!(matches!(check(&pickle(&[b"R"])).unwrap_err(), Refusal::Malformed(_)));
        assert!(matches!(check(&pickle(&[b"h\x07"])).unwrap_err(), Refusal::Malformed(_)));
        assert!(matches!(check(&[0x80, 2, 0xff]).unwrap_err(), Refusal::Malformed(_)));
        assert!(matches!(check(&[0x80, 2, b'.']).unwrap_err(), Refusal::Malformed(_)));
    }

    #[test]
    fn memo_copies_and_nesting_are_bounded() {
        // Each step doubles a tuple through the memo: 2⁴⁰ objects from 200 bytes.
        let mut parts: Vec<Vec<u8>> = vec![b")q\x00".to_vec()];
        for _ in 0..40 {
            parts.push(b"h\x00h\x00\x86q\x00".to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        assert!(matches!(check(&pickle(&refs)).unwrap_err(), Refusal::Malformed(_)));
        let deep = [vec![b'('; 200], vec![b't'; 200]].concat();
        assert!(matches!(check(&pickle(&[&deep])).unwrap_err(), Refusal::Malformed(_)));
        let deep = [b")".to_vec(), b"\x85".repeat(200)].concat();
        assert!(matches!(check(&pickle(&[&deep])).unwrap_err(), Refusal::Malformed(_)));
    }
}
