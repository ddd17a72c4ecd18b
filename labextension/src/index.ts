/**
 * live_nb's JupyterLab plugin: keeps Live session handles in the notebook's own metadata.
 *
 * The kernel cannot write notebook metadata, so the contract (docs/architecture.md, "Kernel <->
 * labextension comm") splits the work: on `%load_ext live_nb` the kernel opens a comm with target
 * `live_nb.metadata`; this plugin answers with the records stored in the notebook, then writes
 * every record the kernel sends to `metadata.live_nb.sessions[NAME]` (sanitised: never a key or a
 * token) and marks the notebook dirty, so the user's next save keeps the handle. Status messages
 * drive a status-bar item (state and GoAway countdown); a palette command forgets the handles.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import {
  describeStatuses,
  forgetRecords,
  isValidName,
  mergeRecords,
  sameRecords,
  sanitizeRecord,
  sanitizeRecords,
  sanitizeStatuses,
  SessionRecords,
  SessionStatuses,
  withSessions
} from './records';

export * from './records';

/** The comm target the kernel opens (live_nb/notebook/metadata.py). */
export const COMM_TARGET = 'live_nb.metadata';
/** The notebook metadata namespace. */
export const METADATA_KEY = 'live_nb';
/** The palette command that removes every stored handle from the current notebook. */
export const FORGET_COMMAND = 'live-nb:forget-handles';

/*
 * Kernel types taken from the notebook's own session context rather than imported from
 * @jupyterlab/services: they are then by construction the ones the running JupyterLab uses.
 */
type KernelConnection = NonNullable<NonNullable<NotebookPanel['sessionContext']['session']>['kernel']>;
type Comm = Parameters<Parameters<KernelConnection['registerCommTarget']>[1]>[0];
type CommMsg = Parameters<NonNullable<Comm['onMsg']>>[0];

/** What the plugin knows about one notebook panel. */
interface IPanelState {
  comm: Comm | null;
  statuses: SessionStatuses;
}

/** Read and sanitise the records stored in a notebook. */
export function storedRecords(panel: NotebookPanel): SessionRecords {
  const namespace = panel.model?.getMetadata(METADATA_KEY) as { sessions?: unknown } | undefined;
  return sanitizeRecords(namespace?.sessions);
}

/** Write `sessions` into the notebook's metadata and mark it dirty, so a save keeps it. */
function writeRecords(panel: NotebookPanel, sessions: SessionRecords): void {
  const model = panel.model;
  if (!model || sameRecords(storedRecords(panel), sessions)) {
    return; // nothing changes: do not make the user save for nothing
  }
  model.setMetadata(METADATA_KEY, withSessions(model.getMetadata(METADATA_KEY), sessions));
  model.dirty = true;
}

/** The status-bar item: one line for the live sessions of the current notebook. */
class LiveStatus extends Widget {
  constructor() {
    super();
    this.addClass('jp-live-nb-status');
    this.node.title = 'live_nb sessions of this notebook (state, GoAway countdown)';
  }

  /** Show `statuses`; the countdown is recomputed every second while anything is shown. */
  display(statuses: SessionStatuses): void {
    this._statuses = statuses;
    this._render();
    const active = Object.keys(statuses).length > 0;
    if (active && this._timer === null) {
      this._timer = window.setInterval(() => this._render(), 1000);
    } else if (!active && this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  dispose(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
    super.dispose();
  }

  private _render(): void {
    // textContent, never innerHTML: names and states come from the kernel (untrusted text).
    this.node.textContent = describeStatuses(this._statuses, Date.now());
  }

  private _statuses: SessionStatuses = {};
  private _timer: number | null = null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'live-nb:plugin',
  description: 'Keeps live_nb session handles in notebook metadata; shows live sessions in the status bar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const states = new Map<NotebookPanel, IPanelState>();
    const status = new LiveStatus();

    const refreshStatus = (): void => {
      const current = tracker.currentWidget;
      status.display(current ? (states.get(current)?.statuses ?? {}) : {});
    };

    const handleMessage = (panel: NotebookPanel, state: IPanelState, data: unknown): void => {
      const message = (data ?? {}) as { [key: string]: unknown };
      switch (message.type) {
        case 'record': {
          const record = sanitizeRecord(message.record);
          if (isValidName(message.name) && record !== null) {
            writeRecords(panel, mergeRecords(storedRecords(panel), { [message.name]: record }));
          }
          break;
        }
        case 'status':
          state.statuses = sanitizeStatuses(message.sessions);
          if (panel === tracker.currentWidget) {
            refreshStatus();
          }
          break;
        case 'forget': {
          const name = isValidName(message.name) ? message.name : null;
          writeRecords(panel, forgetRecords(storedRecords(panel), name));
          break;
        }
        default:
          console.warn('live_nb: unknown comm message', message.type);
      }
    };

    const openComm = (panel: NotebookPanel, comm: Comm): void => {
      const state = states.get(panel);
      if (!state) {
        comm.close();
        return;
      }
      state.comm = comm;
      comm.onMsg = (msg: CommMsg) => {
        state.comm = comm; // the comm that talks is the kernel bridge's (see reattach)
        handleMessage(panel, state, msg.content.data);
      };
      comm.onClose = () => {
        if (state.comm === comm) {
          state.comm = null;
          state.statuses = {};
          refreshStatus();
        }
      };
      // Hand the stored records back: this is what lets `%live resume` work after a restart.
      comm.send({ type: 'records', sessions: storedRecords(panel) } as any);
    };

    /*
     * A kernel that loaded live_nb before this page did (a browser reload, a second tab) holds its
     * comm already: no comm_open will come. Ask the kernel for comms of our target and attach to
     * them, so records and status flow again. A fresh kernel simply has none.
     */
    const reattach = async (panel: NotebookPanel, kernel: KernelConnection): Promise<void> => {
      try {
        const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
        const content = reply.content as { status: string; comms?: { [id: string]: unknown } };
        if (content.status !== 'ok' || kernel.isDisposed) {
          return;
        }
        for (const id of Object.keys(content.comms ?? {})) {
          if (!kernel.hasComm(id)) {
            openComm(panel, kernel.createComm(COMM_TARGET, id));
          }
        }
      } catch (reason) {
        console.debug('live_nb: comm info failed', reason);
      }
    };

    const watched = new WeakSet<KernelConnection>();
    const watchKernel = (panel: NotebookPanel, kernel: KernelConnection | null | undefined): void => {
      if (!kernel || watched.has(kernel)) {
        return;
      }
      watched.add(kernel);
      // Comm targets live on the kernel connection and survive restarts of that kernel.
      kernel.registerCommTarget(COMM_TARGET, comm => openComm(panel, comm));
      void reattach(panel, kernel);
    };

    tracker.widgetAdded.connect((_, panel) => {
      const state: IPanelState = { comm: null, statuses: {} };
      states.set(panel, state);
      const context = panel.sessionContext;
      watchKernel(panel, context.session?.kernel);
      context.kernelChanged.connect((_, change) => {
        state.comm = null;
        state.statuses = {};
        refreshStatus();
        watchKernel(panel, change.newValue);
      });
      context.statusChanged.connect((_, kernelStatus) => {
        if (kernelStatus === 'restarting' || kernelStatus === 'dead') {
          state.comm = null;
          state.statuses = {};
          refreshStatus();
        }
      });
      panel.disposed.connect(() => states.delete(panel));
    });
    tracker.currentChanged.connect(refreshStatus);

    app.commands.addCommand(FORGET_COMMAND, {
      label: 'Forget stored live session handles',
      caption: 'Remove every live_nb resumption handle from this notebook (save to make it stick)',
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => {
        const panel = tracker.currentWidget;
        if (!panel) {
          return;
        }
        writeRecords(panel, {});
        // Tell the kernel too, or it would resume from the records it was handed earlier.
        states.get(panel)?.comm?.send({ type: 'forget', name: null } as any);
      }
    });
    palette?.addItem({ command: FORGET_COMMAND, category: 'Live sessions' });

    statusBar?.registerStatusItem('live-nb:status', {
      item: status,
      align: 'left',
      rank: 5,
      isActive: () => tracker.currentWidget !== null
    });
  }
};

export default plugin;
