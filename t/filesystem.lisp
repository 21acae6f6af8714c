;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; filesystem.lisp --- mkdtemp and filesystem events.

(in-package #:cl-async-ssl-test)

(def-suite filesystem :in cl-async-core
  :description "mkdtemp, fs-watch, fs-unwatch, fs-monitor-close, the
filesystem-* conditions.")
(in-suite filesystem)

(defun tmp-template (name)
  (merge-pathnames (concatenate 'string name "XXXXXX")
                   (uiop:temporary-directory)))

(test mkdtemp-passes-a-directory-pathname
  (let ((dirs '()) (stats nil))
    (with-test-loop ()
      (as:mkdtemp (tmp-template "casl-mk") (lambda (dir) (push dir dirs)))
      (as:mkdtemp (namestring (tmp-template "casl-mk"))
                  (lambda (dir) (push dir dirs)))
      (setf stats (cl-async-ffi:loop-stats (cl-async-base:event-base-c
                                            cl-async-base:*event-base*))))
    (is (= 2 (getf stats :fs-requests)) "asynchronous: both still running")
    (is (= 2 (length dirs)))
    (dolist (dir dirs)
      (is (pathnamep dir))
      (is (uiop:directory-pathname-p dir))
      (is (uiop:subpathp dir (uiop:temporary-directory)))
      (is (null (search "XXXXXX" (namestring dir))))
      (is-true (uiop:directory-exists-p dir))
      (uiop:delete-empty-directory dir))))

(test mkdtemp-missing-parent-signals-enoent
  "With the default event-cb (#'error) the condition leaves the loop; the
callback never runs."
  (let ((ran nil))
    (signals as:filesystem-enoent
      (with-test-loop ()
        (as:mkdtemp (format nil "/casl-missing-~36r/abcXXXXXX" (random (expt 2 64)))
                    (lambda (dir) (setf ran dir)))))
    (is (null ran))))

(test mkdtemp-failure-to-event-cb
  (let ((seen nil) (ran nil))
    (with-test-loop ()
      (as:mkdtemp "/casl-missing-parent/abcXXXXXX" (lambda (dir) (setf ran dir))
                  :event-cb (lambda (e) (setf seen e))))
    (is (null ran))
    (is (typep seen 'as:filesystem-enoent))
    (is (typep seen 'as:filesystem-error))
    (is (typep seen 'as:event-error))
    (is (minusp (as:event-errcode seen)))
    (is (equal "/casl-missing-parent/abcXXXXXX"
               (cl-async::filesystem-path seen)))
    (is (search "/casl-missing-parent/abcXXXXXX" (princ-to-string seen)))))

(test mkdtemp-permission-denied-is-eacces
  (if (zerop (cffi:foreign-funcall "geteuid" :int))
      (pass "running as root: every directory is writable, nothing to check")
      (let ((seen nil))
        (with-test-loop ()
          (as:mkdtemp "/proc/casl-XXXXXX" (lambda (dir) dir)
                      :event-cb (lambda (e) (setf seen e))))
        (is (typep seen 'as:filesystem-error)))))

(test mkdtemp-bad-template-signals-at-once
  (with-test-loop ()
    (signals as:event-error (as:mkdtemp "/tmp/no-template" #'identity))
    (signals as:event-error (as:mkdtemp #p"/tmp/casl-XXXXXX/" #'identity))
    (signals error (as:mkdtemp 42 #'identity))))

(test mkdtemp-errors-in-cb-go-to-event-cb
  (let ((seen nil) (dir nil))
    (with-test-loop (:catch-app-errors t)
      (as:mkdtemp (tmp-template "casl-mk")
                  (lambda (d) (setf dir d) (error "in the mkdtemp cb"))
                  :event-cb (lambda (e) (setf seen e))))
    (when dir (uiop:delete-empty-directory dir))
    (is (equal "in the mkdtemp cb" (princ-to-string seen)))))

(test fs-watch-sees-a-file-created
  (let ((names '()) (monitor nil) (got-monitor nil) (flags '()))
    (with-temp-dir (dir)
      (with-test-loop ()
        (setf monitor
              (as:fs-watch dir
                           (lambda (m path rename-p change-p)
                             (setf got-monitor m)
                             (push path names)
                             (push (list rename-p change-p) flags)
                             (when (equal path "new-file")
                               (as:fs-unwatch m)))))
        (as:with-delay (0.05)
          (with-open-file (s (merge-pathnames "new-file" dir)
                             :direction :output)
            (write-string "42" s)))))
    (is (typep monitor 'as:fs-monitor))
    (is (eq monitor got-monitor))
    (is (member "new-file" names :test #'equal))
    (is (some (lambda (f) (or (first f) (second f))) flags))))

(test fs-monitor
  "Upstream's fs-monitor test: a directory made, a file written, the
directory removed, each seen; the third unwatches and the loop ends."
  (let ((events 0) (seen nil) (monitor nil))
    (with-temp-dir (dir)
      (with-test-loop (:timeout 10)
        (setf monitor (as:fs-watch dir (lambda (m path rename-p change-p)
                                         (declare (ignore path rename-p change-p))
                                         (is (eq monitor m))
                                         (setf seen t))))
        (let ((steps (list (lambda () (ensure-directories-exist
                                       (merge-pathnames "42/" dir)))
                           (lambda () (with-open-file (s (merge-pathnames "4242" dir)
                                                         :direction :output)
                                        (princ 42 s)))
                           (lambda () (uiop:delete-empty-directory
                                       (merge-pathnames "42/" dir))))))
          (labels ((next ()
                     (setf seen nil)
                     (funcall (pop steps))
                     (wait-for-it))
                   (wait-for-it ()
                     (if seen
                         (if (= (incf events) 3)
                             (as:fs-unwatch monitor)
                             (next))
                         (as:delay #'wait-for-it :time 0.02))))
            (next)))))
    (is (= 3 events))))

(test fs-watch-missing-path-signals-enoent
  (with-test-loop ()
    (signals as:filesystem-enoent
      (as:fs-watch "/casl-no-such-dir/blabla" (lambda (&rest args) args)
                   :event-cb (lambda (e) e)))
    (signals error (as:fs-watch 42 #'identity))))

(test fs-monitor-close-is-idempotent-and-safe-at-exit
  (let ((closed-in-exit nil))
    (with-temp-dir (dir)
      (with-test-loop ()
        (let ((m1 (as:fs-watch dir (lambda (&rest args) args)))
              (m2 (as:fs-watch (namestring dir) (lambda (&rest args) args))))
          (as:fs-monitor-close m1)
          (as:fs-monitor-close m1)
          (as:fs-unwatch m1)            ; closed: nothing to stop
          (as:add-event-loop-exit-callback
           (lambda ()
             (as:fs-monitor-close m2)
             (as:fs-monitor-close m2)
             (setf closed-in-exit t)))
          (as:delay #'as:exit-event-loop :time 0.02))))
    (is-true closed-in-exit)))

(test fs-unwatch-lets-the-loop-end
  (let ((ended nil))
    (with-temp-dir (dir)
      (with-test-loop (:timeout 5)
        (let ((m (as:fs-watch dir (lambda (&rest args) args))))
          (as:with-delay (0.01) (as:fs-unwatch m) (as:fs-unwatch m))))
      (setf ended t))
    (is-true ended)))
