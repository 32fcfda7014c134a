"""A radix tree over prompt token ids: SGLang's prefix cache, reduced to what timing needs.

Finished requests insert their prompt; a new request reuses the longest cached prefix (its
KV is not recomputed) and locks it while it runs. Unlocked leaves are evicted least recently
used first when the KV pool needs room.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence


class Node:
    """One edge of the tree: a run of token ids and the requests that hold it."""

    __slots__ = ("children", "key", "last", "lock", "parent")

    def __init__(self, key: tuple[int, ...], parent: Node | None) -> None:
        self.key = key
        self.parent = parent
        self.children: dict[int, Node] = {}
        self.lock = 0
        self.last = 0


class RadixCache:
    """Prefix cache with token accounting for the KV pool.

    Attributes:
        total: Tokens stored in the tree.
        locked: Tokens on paths locked by running requests (not evictable).
    """

    def __init__(self) -> None:
        self.root = Node((), None)
        self.total = 0
        self.locked = 0
        self._tick = itertools.count(1)

    def _split(self, node: Node, at: int) -> Node:
        # Turns node's edge key[:at] into a new parent, so a match can end at a node boundary.
        assert node.parent is not None
        head = Node(node.key[:at], node.parent)
        head.lock, head.last = node.lock, node.last
        node.parent.children[node.key[0]] = head
        node.key = node.key[at:]
        node.parent = head
        head.children[node.key[0]] = node
        return head

    def _walk(self, ids: Sequence[int]) -> tuple[int, Node]:
        node, pos, tick = self.root, 0, next(self._tick)
        while pos < len(ids):
            child = node.children.get(ids[pos])
            if child is None:
                break
            key = child.key
            same = 0
            limit = min(len(key), len(ids) - pos)
            while same < limit and key[same] == ids[pos + same]:
                same += 1
            if same < len(key):
                child = self._split(child, same)
            child.last = tick
            node, pos = child, pos + same
        return pos, node

    def match(self, ids: Sequence[int]) -> tuple[int, Node]:
        """Finds the longest cached prefix.

        Args:
            ids: Token ids to match (callers pass the prompt without its last token).

        Returns:
            The prefix length and the node where it ends (pass it to ``lock``).
        """
        return self._walk(ids)

    def lock(self, node: Node, delta: int) -> None:
        """Adds ``delta`` (+1 or -1) to the holders of the path from the root to ``node``.

        Args:
            node: A node returned by ``match``.
            delta: +1 to lock, -1 to unlock.
        """
        current: Node | None = node
        while current is not None and current is not self.root:
            before = current.lock
            current.lock += delta
            if before == 0 and current.lock > 0:
                self.locked += len(current.key)
            elif before > 0 and current.lock == 0:
                self.locked -= len(current.key)
            current = current.parent

    def insert(self, ids: Sequence[int]) -> int:
        """Stores a prompt.

        Args:
            ids: The prompt's token ids.

        Returns:
            Tokens that were not cached before (their KV now belongs to the tree).
        """
        pos, node = self._walk(ids)
        if pos == len(ids):
            return 0
        leaf = Node(tuple(ids[pos:]), node)
        leaf.last = next(self._tick)
        node.children[ids[pos]] = leaf
        self.total += len(leaf.key)
        return len(leaf.key)

    def evict(self, tokens: int) -> int:
        """Frees at least ``tokens`` tokens of unlocked leaves, least recently used first.

        Args:
            tokens: Tokens wanted.

        Returns:
            Tokens freed (less than wanted when not enough is evictable).
        """
        leaves = [(n.last, id(n), n) for n in self._leaves() if n.lock == 0]
        heapq.heapify(leaves)
        freed = 0
        while leaves and freed < tokens:
            _, _, node = heapq.heappop(leaves)
            parent = node.parent
            assert parent is not None
            del parent.children[node.key[0]]
            freed += len(node.key)
            if parent is not self.root and not parent.children and parent.lock == 0:
                heapq.heappush(leaves, (parent.last, id(parent), parent))
        self.total -= freed
        return freed

    def _leaves(self) -> list[Node]:
        found, stack = [], [self.root]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            elif node is not self.root:
                found.append(node)
        return found
