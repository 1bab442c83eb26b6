/**
 * kernelkeeper's kernel picker: one search box over every environment's kernel.
 *
 * It replaces JupyterLab's "Select Kernel" / "Change Kernel" dialog through the
 * documented extension point (a plugin providing ISessionContextDialogs; the stock
 * `@jupyterlab/apputils-extension:sessionDialogs` is disabled in package.json), and
 * adds an "All kernels…" launcher item. Its data is the server extension's catalog
 * (`<base_url>kernelkeeper/kernels`): every kernel, listed in the short list or not,
 * and every environment that cannot start one, with the reason. Where that endpoint
 * is missing (kernelkeeper's server extension off), the stock dialog is used.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ISessionContext,
  ISessionContextDialogs,
  SessionContextDialogs,
  showDialog
} from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { KernelSpec, ServerConnection } from '@jupyterlab/services';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

/** One entry of the catalog (listing.Item.to_json on the server). */
export interface IKernelItem {
  name: string | null;
  display_name: string;
  kind: string;
  env_name: string;
  project: string | null;
  prefix: string | null;
  python: string | null;
  python_version: string | null;
  listed: string | null;
  recent: boolean;
  startable: boolean;
  health: string;
}

async function fetchCatalog(): Promise<IKernelItem[] | null> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'kernelkeeper/kernels');
  try {
    const response = await ServerConnection.makeRequest(url, {}, settings);
    if (!response.ok) {
      return null;
    }
    const data = await response.json();
    return data.kernels as IKernelItem[];
  } catch (e) {
    return null;
  }
}

function haystack(item: IKernelItem): string {
  return [
    item.display_name,
    item.env_name,
    item.project ?? '',
    item.kind,
    item.python_version ?? '',
    item.prefix ?? '',
    item.name ?? ''
  ]
    .join(' ')
    .toLowerCase();
}

/** The group an entry shows under: its project folder, else its kind. */
function groupOf(item: IKernelItem): string {
  return item.project ?? `${item.kind} environments`;
}

/** Entries matching every word of the query: recent first, then by group and name; startable before broken. */
export function search(items: IKernelItem[], query: string): IKernelItem[] {
  const words = query.toLowerCase().split(/\s+/).filter(w => w);
  const hits = items.filter(item => {
    const text = haystack(item);
    return words.every(w => text.includes(w));
  });
  const nameStarts = (item: IKernelItem): number =>
    words.length && item.display_name.toLowerCase().startsWith(words[0])
      ? 0
      : 1;
  return hits.sort(
    (a, b) =>
      Number(!a.startable) - Number(!b.startable) ||
      nameStarts(a) - nameStarts(b) ||
      Number(!a.recent) - Number(!b.recent) ||
      groupOf(a).localeCompare(groupOf(b)) ||
      a.display_name.localeCompare(b.display_name)
  );
}

/** The dialog body: a search box over a grouped list; its value is the chosen kernel's name. */
class PickerBody extends Widget implements Dialog.IBodyWidget<string | null> {
  constructor(items: IKernelItem[], current: string | null) {
    super();
    this.addClass('kk-picker');
    this._items = items;
    this._input = document.createElement('input');
    this._input.type = 'search';
    this._input.className = 'kk-picker-search jp-mod-styled';
    this._input.placeholder =
      'Search project, environment, kind, Python version, path…';
    this._input.setAttribute('aria-label', 'Search kernels');
    this._list = document.createElement('div');
    this._list.className = 'kk-picker-list';
    this._list.setAttribute('role', 'listbox');
    this.node.append(this._input, this._list);
    this._input.addEventListener('input', () => {
      this._selected = null;
      this._render();
    });
    this._selected = current;
    this._render();
  }

  getValue(): string | null {
    if (this._selected) {
      return this._selected;
    }
    const first = this._shown.find(i => i.startable && i.name);
    return first ? first.name : null;
  }

  protected onAfterAttach(): void {
    this._input.focus();
  }

  private _render(): void {
    this._shown = search(this._items, this._input.value);
    this._list.replaceChildren();
    let group = '';
    for (const item of this._shown.slice(0, 200)) {
      const g = groupOf(item);
      if (g !== group) {
        group = g;
        const header = document.createElement('div');
        header.className = 'kk-picker-group';
        // The header is right-to-left so a long folder keeps its last part visible; the mark keeps
        // a path's leading '/' where it belongs (a neutral character at the start of an RTL line
        // would be drawn at its end).
        header.textContent = '\u200E' + g;
        this._list.append(header);
      }
      const row = document.createElement('div');
      row.className = 'kk-picker-item';
      row.setAttribute('role', 'option');
      row.dataset.kernel = item.name ?? '';
      if (!item.startable) {
        row.classList.add('kk-mod-broken');
        row.setAttribute('aria-disabled', 'true');
      }
      if (item.name && item.name === this._selected) {
        row.classList.add('kk-mod-selected');
      }
      const title = document.createElement('div');
      title.className = 'kk-picker-title';
      title.textContent = item.display_name + (item.recent ? '  · recent' : '');
      const detail = document.createElement('div');
      detail.className = 'kk-picker-detail';
      const where = item.prefix ?? item.python ?? '';
      detail.textContent =
        item.health === 'ok' ? where : `${where} — cannot start: ${item.health}`;
      row.title = item.startable ? where : item.health;
      row.append(title, detail);
      if (item.startable && item.name) {
        row.addEventListener('click', () => {
          this._selected = item.name;
          this._render();
        });
        row.addEventListener('dblclick', () => {
          this._selected = item.name;
          this.node
            .closest('.jp-Dialog')
            ?.querySelector<HTMLButtonElement>('.jp-mod-accept')
            ?.click();
        });
      }
      this._list.append(row);
    }
    if (!this._shown.length) {
      const none = document.createElement('div');
      none.className = 'kk-picker-none';
      none.textContent = 'No kernel matches.';
      this._list.append(none);
    }
  }

  private _items: IKernelItem[];
  private _shown: IKernelItem[] = [];
  private _selected: string | null;
  private _input: HTMLInputElement;
  private _list: HTMLDivElement;
}

/** Ask for a kernel: its name, or null (cancelled, or no catalog: `undefined`). */
export async function pickKernel(
  title: string,
  current: string | null
): Promise<string | null | undefined> {
  const items = await fetchCatalog();
  if (items === null) {
    return undefined;
  }
  const result = await showDialog({
    title,
    body: new PickerBody(items, current),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Select' })],
    focusNodeSelector: '.kk-picker-search'
  });
  return result.button.accept ? result.value : null;
}

const asked = new WeakSet<ISessionContext>();

class PickerDialogs extends SessionContextDialogs {
  constructor(
    options: ISessionContext.IDialogsOptions,
    private _specs: KernelSpec.IManager
  ) {
    super(options);
  }

  /** Start a kernel by name, then reload the kernel list: a started kernel joins the short list (recent). */
  private async _start(sessionContext: ISessionContext, name: string): Promise<void> {
    await sessionContext.changeKernel({ name });
    await this._specs.refreshSpecs();
  }

  async selectKernel(sessionContext: ISessionContext): Promise<void> {
    if (sessionContext.isDisposed) {
      return;
    }
    const current = sessionContext.session?.kernel?.name ?? null;
    // JupyterLab asks for a kernel when the one a notebook names is not in /api/kernelspecs,
    // which holds only the short list: a kernel the server still starts by name (the catalog
    // has it, startable) is started without asking, once per notebook session.
    const wanted = sessionContext.kernelPreference.name;
    if (sessionContext.hasNoKernel && wanted && !asked.has(sessionContext)) {
      asked.add(sessionContext);
      const items = await fetchCatalog();
      if (items?.some(i => i.name === wanted && i.startable)) {
        return this._start(sessionContext, wanted);
      }
    }
    asked.add(sessionContext);
    const name = await pickKernel(
      sessionContext.hasNoKernel ? 'Select Kernel' : 'Change Kernel',
      current
    );
    if (name === undefined) {
      return super.selectKernel(sessionContext); // no catalog: the stock dialog
    }
    if (name === null) {
      return; // as the stock dialog's cancel: the kernel stays as it is (or none)
    }
    if (name !== current || sessionContext.hasNoKernel) {
      await this._start(sessionContext, name);
    }
  }
}

const dialogs: JupyterFrontEndPlugin<ISessionContextDialogs> = {
  id: 'kernelkeeper:session-dialogs',
  description: 'A searchable kernel picker for every environment kernelkeeper finds.',
  provides: ISessionContextDialogs,
  optional: [ITranslator],
  autoStart: true,
  activate: (app: JupyterFrontEnd, translator: ITranslator | null) =>
    new PickerDialogs(
      { translator: translator ?? nullTranslator },
      app.serviceManager.kernelspecs
    )
};

const COMMAND = 'kernelkeeper:all-kernels';

/** A magnifier on a rounded square, the launcher tile's image (drawn like the kinds' badges). */
const SEARCH_ICON =
  'data:image/svg+xml,' +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">' +
      '<rect x="2" y="2" width="60" height="60" rx="12" fill="#4b5563"/>' +
      '<circle cx="28" cy="28" r="13" fill="none" stroke="#fff" stroke-width="6"/>' +
      '<path d="M38 38 L50 50" stroke="#fff" stroke-width="7" stroke-linecap="round"/>' +
      '</svg>'
  );

const launcher: JupyterFrontEndPlugin<void> = {
  id: 'kernelkeeper:launcher',
  description: 'An "All kernels…" launcher item that opens the picker for a new notebook.',
  optional: [ILauncher],
  autoStart: true,
  activate: (app: JupyterFrontEnd, launcherItems: ILauncher | null) => {
    app.commands.addCommand(COMMAND, {
      label: 'All kernels…',
      caption: 'A new notebook with any environment’s kernel (searchable)',
      // The notebook icon of JupyterLab's own "new notebook" command: the launcher draws the first
      // tile's icon as its Notebook section's heading, and this tile comes first.
      icon: args => app.commands.icon('notebook:create-new', args),
      execute: async args => {
        const name = await pickKernel('New notebook with kernel', null);
        if (!name) {
          return;
        }
        return app.commands.execute('notebook:create-new', {
          cwd: (args['cwd'] as string) ?? '',
          kernelName: name
        });
      }
    });
    launcherItems?.add({
      command: COMMAND,
      category: 'Notebook',
      rank: -1,
      kernelIconUrl: SEARCH_ICON // a kernel tile without one shows its label's first letter
    });
  }
};

export default [dialogs, launcher];
