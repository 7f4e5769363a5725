//! A parser of `CLUSTER NODES`, one node's view of the whole cluster, and
//! the [`Topology`] the waits compare across nodes.

use std::collections::BTreeMap;

/// Hash slots in every Redis Cluster.
pub(super) const SLOTS: usize = 16_384;

/// One node's `CLUSTER NODES`: its view of the whole cluster.
#[derive(Debug)]
pub(super) struct View {
    pub(super) lines: Vec<NodeLine>,
}

impl View {
    pub(super) fn myself(&self) -> Option<&NodeLine> {
        self.lines.iter().find(|l| l.has_flag("myself"))
    }

    pub(super) fn node(&self, port: u16) -> Option<&NodeLine> {
        self.lines.iter().find(|l| l.port == port)
    }

    pub(super) fn port_of(&self, id: &str) -> Option<u16> {
        self.lines.iter().find(|l| l.id == id).map(|l| l.port)
    }

    /// What this view says about the nodes in `live` and the slots.
    pub(super) fn topology(&self, live: &[u16]) -> Result<Topology, String> {
        let mut owners = vec![0; SLOTS];
        for line in self.lines.iter().filter(|l| l.has_flag("master")) {
            for &(start, end) in &line.slots {
                for owner in &mut owners[start..=end] {
                    *owner = line.port;
                }
            }
        }
        let mut primary_of = BTreeMap::new();
        for line in self.lines.iter().filter(|l| live.contains(&l.port)) {
            let primary = match &line.primary_id {
                None => None,
                Some(id) => Some(
                    self.port_of(id)
                        .ok_or_else(|| format!("node {} replicates unknown {id}", line.port))?,
                ),
            };
            primary_of.insert(line.port, primary);
        }
        Ok(Topology { owners, primary_of })
    }
}

/// One node's idea of who does what, compared across nodes: right after
/// `--cluster create` or a failover, some still see a fresh replica as a
/// primary, and would, for one, refuse it their vote in a failover.
#[derive(PartialEq, Eq)]
pub(super) struct Topology {
    /// The port of the primary serving each slot, 0 where none does.
    pub(super) owners: Vec<u16>,
    /// For each running node: `None` for a primary, else its primary's port.
    pub(super) primary_of: BTreeMap<u16, Option<u16>>,
}

/// Short: 16384 slot owners would drown a failure message.
impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ranges: Vec<(usize, usize, u16)> = Vec::new();
        for (slot, &owner) in self.owners.iter().enumerate() {
            match ranges.last_mut() {
                Some((_, end, last)) if *last == owner => *end = slot,
                _ => ranges.push((slot, slot, owner)),
            }
        }
        f.debug_struct("Topology")
            .field("slots", &ranges)
            .field("primary_of", &self.primary_of)
            .finish()
    }
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <primary id|-> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot ranges...>`.
#[derive(Debug)]
pub(super) struct NodeLine {
    pub(super) id: String,
    pub(super) port: u16,
    pub(super) flags: Vec<String>,
    pub(super) primary_id: Option<String>,
    /// Inclusive ranges of served slots.
    pub(super) slots: Vec<(usize, usize)>,
}

impl NodeLine {
    pub(super) fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, _bus) = fields.get(1)?.split_once('@')?;
        let port = address.rsplit_once(':')?.1.parse().ok()?;
        let primary_id = match *fields.get(3)? {
            "-" => None,
            id => Some(id.to_owned()),
        };
        let slots = fields
            .get(8..)
            .unwrap_or_default()
            .iter()
            // `[slot->-id]` and `[slot-<-id]` are migrations in progress, not
            // ownership.
            .filter(|field| !field.starts_with('['))
            .map(|field| {
                let (start, end) = field.split_once('-').unwrap_or((field, field));
                Some((start.parse().ok()?, end.parse().ok()?))
            })
            .collect::<Option<Vec<(usize, usize)>>>()?;
        if slots
            .iter()
            .any(|&(start, end)| start > end || end >= SLOTS)
        {
            return None;
        }
        Some(Self {
            id: (*fields.first()?).to_owned(),
            port,
            flags: fields.get(2)?.split(',').map(str::to_owned).collect(),
            primary_id,
            slots,
        })
    }

    pub(super) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Flagged as failing (`fail`, or `fail?` for "this node cannot reach
    /// it"), or not (yet) a full member.
    pub(super) fn is_unhealthy(&self) -> bool {
        ["fail", "fail?", "handshake", "noaddr"]
            .iter()
            .any(|flag| self.has_flag(flag))
    }

    pub(super) fn slot_count(&self) -> usize {
        self.slots.iter().map(|(start, end)| end - start + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3-primary, 1-replica cluster as node 30001 sees it (the format of
    /// the Redis documentation, hostnames included).
    const SIX_NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,host2 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003,host3 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001,host1 myself,master - 0 0 1 connected 0-5460
";

    fn view(text: &str) -> View {
        View {
            lines: text
                .lines()
                .map(|l| NodeLine::parse(l).unwrap_or_else(|| panic!("parses: {l}")))
                .collect(),
        }
    }

    // A primary's line gives its id, port (not the bus port), flags and
    // slot ranges; a single slot counts as a range of one.
    #[test]
    fn a_primary_line_gives_id_port_flags_and_slots() {
        let line = NodeLine::parse(
            "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 5462",
        )
        .unwrap();
        assert_eq!(line.id, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
        assert_eq!(line.port, 30001);
        assert!(line.has_flag("myself") && line.has_flag("master"));
        assert_eq!(line.primary_id, None);
        assert_eq!(line.slots, vec![(0, 5460), (5462, 5462)]);
        assert_eq!(line.slot_count(), 5462);
        assert!(!line.is_unhealthy());
    }

    // A replica's line names its primary's id and serves no slot.
    #[test]
    fn a_replica_line_names_its_primary_and_serves_nothing() {
        let line = NodeLine::parse(SIX_NODES.lines().next().unwrap()).unwrap();
        assert_eq!(
            line.primary_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert_eq!(line.slot_count(), 0);
    }

    // Slots being migrated (`[slot->-id]`, `[slot-<-id]`) are not owned.
    #[test]
    fn migrating_slots_are_not_counted_as_owned() {
        let line = NodeLine::parse(
            "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 0 2 connected 10-20 [21->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] [22-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]",
        )
        .unwrap();
        assert_eq!(line.slots, vec![(10, 20)]);
    }

    // Lines this parser cannot trust are refused, not half-read: no bus
    // port, a port that is not a number, a slot past 16383, a reversed or
    // non-numeric range, too few fields.
    #[test]
    fn malformed_lines_are_refused() {
        let id = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";
        for line in [
            format!("{id} 127.0.0.1:30002 master - 0 0 2 connected 0-10"),
            format!("{id} 127.0.0.1:port@31002 master - 0 0 2 connected"),
            format!("{id} 127.0.0.1:30002@31002 master - 0 0 2 connected 0-16384"),
            format!("{id} 127.0.0.1:30002@31002 master - 0 0 2 connected 20-10"),
            format!("{id} 127.0.0.1:30002@31002 master - 0 0 2 connected a-b"),
            format!("{id} 127.0.0.1:30002@31002"),
            String::new(),
        ] {
            assert!(NodeLine::parse(&line).is_none(), "accepted {line:?}");
        }
    }

    // `fail`, `fail?`, `handshake` and `noaddr` all mean "not a healthy
    // member yet"; other flags do not.
    #[test]
    fn failing_and_joining_flags_mark_a_node_unhealthy() {
        let with = |flags: &str| {
            NodeLine::parse(&format!(
                "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 {flags} - 0 0 2 connected"
            ))
            .unwrap()
        };
        for flags in ["master,fail", "master,fail?", "handshake", "noaddr"] {
            assert!(with(flags).is_unhealthy(), "{flags}");
        }
        assert!(!with("master,nofailover").is_unhealthy());
    }

    // A view finds its own node, any node by port, and ports by id.
    #[test]
    fn a_view_finds_itself_nodes_and_ports_by_id() {
        let view = view(SIX_NODES);
        assert_eq!(view.myself().map(|l| l.port), Some(30001));
        assert_eq!(view.node(30003).map(|l| l.slot_count()), Some(5461));
        assert_eq!(
            view.port_of("67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"),
            Some(30002)
        );
        assert!(view.node(1).is_none());
    }

    // The topology maps every slot to its primary's port (0 where none
    // serves it) and each live node to its primary; nodes not live are
    // left out of the roles.
    #[test]
    fn topology_maps_slots_to_primaries_and_live_nodes_to_roles() {
        let without_last_range: String = SIX_NODES.replace(" 10923-16383", "");
        let topology = view(&without_last_range).topology(&[30001, 30004]).unwrap();
        assert_eq!(topology.owners[0], 30001);
        assert_eq!(topology.owners[5461], 30002);
        assert_eq!(topology.owners[10923], 0);
        assert_eq!(
            topology.primary_of,
            BTreeMap::from([(30001, None), (30004, Some(30001))])
        );
        let short = format!("{topology:?}");
        assert!(short.contains("(10923, 16383, 0)"), "{short}");
    }

    // A live replica of an id nobody lists is an error, not a guess.
    #[test]
    fn a_replica_of_an_unknown_primary_is_an_error() {
        let orphan = SIX_NODES.replace(
            "slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca",
            "slave 0000000000000000000000000000000000000000",
        );
        let error = view(&orphan).topology(&[30004]).unwrap_err();
        assert!(error.contains("30004"), "{error}");
    }
}
