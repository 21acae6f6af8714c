;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; fs.lisp --- descriptor pollers, filesystem watchers and filesystem
;;;; requests.

(in-package #:cl-async-ffi)

;;;# Pollers

(defconstant +poll-readable+ 1 "CASL_POLL_READABLE.")
(defconstant +poll-writable+ 2 "CASL_POLL_WRITABLE.")
(defconstant +poll-disconnect+ 4 "CASL_POLL_DISCONNECT.")

(defc %poll-new "casl_poll_new" :int
  (loop :pointer) (id :int64) (fd :int) (events :int) (out :pointer))
(defc poll-close "casl_poll_close" :void (poll :pointer))

(defun poll-new (loop id fd events)
  "Polls FD for EVENTS (+poll-...+ bits): (values poller-pointer code)."
  (with-out-pointer (out) (%poll-new loop id fd events out)))

;;;# Descriptors

(defc fd-set-nonblocking "casl_fd_set_nonblocking" :int (fd :int) (on :boolean))
(defc fd-connected "casl_fd_connected" :int (fd :int))

;;;# Filesystem watchers

(defconstant +fs-rename+ 1 "CASL_FS_RENAME.")
(defconstant +fs-change+ 2 "CASL_FS_CHANGE.")

(defc %fs-event-new "casl_fs_event_new" :int
  (loop :pointer) (id :int64) (path nullable-string) (out :pointer))
(defc fs-event-stop "casl_fs_event_stop" :int (watcher :pointer))
(defc fs-event-close "casl_fs_event_close" :void (watcher :pointer))

(defun fs-event-new (loop id path)
  "Watches PATH: (values watcher-pointer code)."
  (with-out-pointer (out) (%fs-event-new loop id path out)))

;;;# Filesystem requests

(defc fs-mkdtemp "casl_fs_mkdtemp" :int
  (loop :pointer) (id :int64) (template nullable-string))
