/* Intrusive doubly-linked lists: an object embeds LIST_FIELDS(type, name)
 * and can sit on one list per name. Head pointers are plain 'type *'. */
#pragma once

#include <stddef.h>

#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

#define LIST_INIT(name, item)                                   \
        do {                                                    \
                (item)->name##_next = (item)->name##_prev = NULL; \
        } while (0)

#define LIST_PREPEND(name, head, item)                                  \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                _item->name##_next = *_head;                            \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item;        \
                _item->name##_prev = NULL;                              \
                *_head = _item;                                         \
        } while (0)

/* O(n): used where lists are short or order matters (FIFOs). */
#define LIST_APPEND(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_hd = &(head), *_it = (item), *_t; \
                _it->name##_next = NULL;                                \
                if (!*_hd) {                                            \
                        _it->name##_prev = NULL;                        \
                        *_hd = _it;                                     \
                } else {                                                \
                        for (_t = *_hd; _t->name##_next; _t = _t->name##_next) \
                                ;                                       \
                        _t->name##_next = _it;                          \
                        _it->name##_prev = _t;                          \
                }                                                       \
        } while (0)

#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item->name##_prev; \
                if (_item->name##_prev)                                 \
                        _item->name##_prev->name##_next = _item->name##_next; \
                else if (*_head == _item)                               \
                        *_head = _item->name##_next;                    \
                _item->name##_next = _item->name##_prev = NULL;         \
        } while (0)

#define LIST_FOREACH_SAFE(name, i, n, head) \
        for ((i) = (head); (i) && (((n) = (i)->name##_next), 1); (i) = (n))
