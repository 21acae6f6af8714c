;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; common.lisp --- helpers the stress scripts share (stress.lisp, the
;;;; server it attacks, and the soak), loaded into each script's own
;;;; package once cl-async-ssl is loaded.

(defun proc-status-kib (pid field)
  "FIELD (\"VmRSS:\", ...) of /proc/PID/status in KiB (PID :self for this
process), or nil."
  (with-open-file (f (format nil "/proc/~(~a~)/status" pid) :if-does-not-exist nil)
    (and f
         (loop :for line := (read-line f nil)
               :while line
               :when (and (> (length line) (length field))
                          (string= field line :end2 (length field)))
                 :return (parse-integer line :start (length field) :junk-allowed t)))))

(defun rss-kib (&optional (pid :self))
  "The resident set size of process PID (default this one) in KiB."
  (proc-status-kib pid "VmRSS:"))

(defun fd-count (&optional (pid :self))
  "How many descriptors process PID (default this one) has open (for this
process, counting the one that reads the directory)."
  (length (directory (format nil "/proc/~(~a~)/fd/*" pid) :resolve-symlinks nil)))

(defun malloc-in-use ()
  "Bytes malloc has handed out and not had back (glibc's mallinfo2)."
  (cffi:with-foreign-object (info :size 10)
    (cffi:foreign-funcall "mallinfo2" :pointer info :void)
    ;; struct mallinfo2: arena ordblks smblks hblks hblkhd usmblks fsmblks
    ;; uordblks fordblks keepcost; in use = uordblks + hblkhd
    (+ (cffi:mem-aref info :size 7) (cffi:mem-aref info :size 4))))

(defun set-rst-on-close (socket)
  "Makes closing SOCKET send a TCP RST (SO_LINGER with a zero timeout)."
  (let ((fd (cl-async-ffi:tcp-fd (as:socket-c socket))))
    (cffi:with-foreign-object (l :int 2)
      (setf (cffi:mem-aref l :int 0) 1 (cffi:mem-aref l :int 1) 0)
      (cffi:foreign-funcall "setsockopt" :int fd :int 1 :int 13 :pointer l :int 8 :int))))

(defun rst (socket)
  "Closes SOCKET with a TCP RST (unless it is closed already)."
  (unless (as:socket-closed-p socket)
    (when (as:socket-c socket) (set-rst-on-close socket))
    (as:close-socket socket :force t)))

(defun exit-when-orphaned ()
  "Starts a thread that ends this process once its parent is gone (a
stress child never outlives the driver, however the driver ended)."
  (let ((parent (sb-posix:getppid)))
    (sb-thread:make-thread
     (lambda ()
       (loop (sleep 1)
             (unless (= parent (sb-posix:getppid))
               (sb-ext:exit :code 3 :abort t))))
     :name "exit when orphaned")))
